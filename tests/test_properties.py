"""Property tests (hypothesis): the run-table reader and the fitters on generated input.

- the reader, given any table (numbers of any size and sign, NaN, inf, text, missing cells) or any bytes
  as a CSV file, returns a validated table or raises UsageError; nothing else escapes, and the only
  warnings are ScalingWarnings;
- the fitters, given any finite positive table, return a finite fit or raise UsageError;
- a fitted law predicts a loss that does not rise with N or with D.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.runs.table import load_runs

SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=8),
    st.none(),
    st.sampled_from(["1e9", "  3.2 ", "nan", "-inf", "1,5", "0x10", "", "175B"]),
)
positive = st.floats(min_value=1e-6, max_value=1e30, allow_nan=False, allow_infinity=False)


def only_scaling_warnings(caught: list[warnings.WarningMessage]) -> None:
    others = [w for w in caught if not issubclass(w.category, ScalingWarning)]
    assert not others, [str(w.message) for w in others]


def load_quietly(source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = load_runs(source)
        except UsageError:
            table = None
    only_scaling_warnings(caught)
    return table


def assert_validated(table: pd.DataFrame) -> None:
    values = table[["N", "D", "C", "loss"]].to_numpy(float)
    assert len(table) and np.isfinite(values).all() and (values > 0).all()


@SETTINGS
@given(
    st.lists(st.tuples(anything, anything, anything, anything), min_size=0, max_size=12),
    st.sampled_from([("N", "D", "loss", "status"), ("N", "C", "loss", "U"), ("D", "C", "loss", "run")]),
)
def test_reader_returns_a_valid_table_or_a_usage_error(rows, columns):
    table = pd.DataFrame(rows, columns=list(columns))
    loaded = load_quietly(table)
    if loaded is not None:
        assert_validated(loaded)


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from([b"", b"N,D,loss\n", b"N,C,loss,U\n"]))
def test_reader_of_any_bytes_as_csv(data, header):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.csv"
        path.write_bytes(header + data)
        loaded = load_quietly(path)
    if loaded is not None:
        assert_validated(loaded)


def fit_quietly(table: pd.DataFrame, law: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit(table, law=law)
        except UsageError:
            result = None
    only_scaling_warnings(caught)
    return result


@settings(SETTINGS, max_examples=40)
@given(
    st.lists(st.tuples(positive, positive, positive), min_size=1, max_size=14),
    st.sampled_from(["chinchilla", "kaplan_nd", "kaplan_n", "kaplan_d", "kaplan_c"]),
)
def test_any_finite_positive_table_fits_or_fails_cleanly(rows, law):
    table = pd.DataFrame(rows, columns=["N", "D", "loss"])
    result = fit_quietly(table, law)
    if result is None:
        return
    assert all(math.isfinite(v) for v in result.params.values()), result.params
    assert math.isfinite(result.objective) and result.objective >= 0
    used = load_runs(table)
    with np.errstate(all="ignore"):
        predicted = result.predict(N=used["N"].to_numpy(), D=used["D"].to_numpy())
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0), (result.params, predicted)


def law_table(draw_params, n_sizes: int, n_tokens: int, noise: np.ndarray) -> pd.DataFrame:
    grid = np.meshgrid(np.geomspace(1e6, 1e9, n_sizes), np.geomspace(1e7, 1e11, n_tokens))
    N, D = (a.ravel() for a in grid)
    loss = get_law("chinchilla").predict(draw_params, N=N, D=D) * np.exp(noise[: len(N)])
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


@pytest.mark.slow
@settings(SETTINGS, max_examples=25)
@given(
    st.fixed_dictionaries({
        "E": st.floats(0.5, 3.0), "A": st.floats(10.0, 2000.0), "B": st.floats(10.0, 5000.0),
        "alpha": st.floats(0.1, 0.8), "beta": st.floats(0.1, 0.8),
    }),  # fmt: skip
    st.integers(3, 5),
    st.integers(3, 5),
    st.lists(st.floats(-0.05, 0.05), min_size=25, max_size=25),
    st.sampled_from(["chinchilla", "kaplan_nd"]),
)
def test_fitted_laws_predict_loss_non_increasing_in_N_and_D(params, n_sizes, n_tokens, noise, law):
    table = law_table(params, n_sizes, n_tokens, np.array(noise))
    result = fit_quietly(table, law)
    assert result is not None, "a table drawn from the law itself must fit"
    grid = np.geomspace(1e3, 1e15, 61)  # far beyond the data on both sides
    for fixed in (1e5, 1e8, 1e11, 1e14):
        with np.errstate(all="ignore"):
            in_n = result.predict(N=grid, D=np.full_like(grid, fixed))
            in_d = result.predict(N=np.full_like(grid, fixed), D=grid)
        for curve in (in_n, in_d):
            assert np.all(np.diff(curve) <= 1e-12 * curve[:-1]), (result.params, curve)


@pytest.mark.slow
@settings(SETTINGS, max_examples=10)
@given(repeats=st.floats(1.0, 200.0), noise=st.lists(st.floats(-0.03, 0.03), min_size=36, max_size=36))
def test_data_constrained_fit_is_non_increasing_in_N_and_D(repeats, noise):
    """With repeated data (D = repeats x U at the top), more tokens or parameters never raise the loss."""
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e7, 1e10, 6)))
    U = np.full_like(D, 1e10 / repeats)
    truth = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35,
             "R_D_star": 15.4, "R_N_star": 5.3}  # Muennighoff et al. 2023
    loss = get_law("data_constrained").predict(truth, N=N, D=D, U=U) * np.exp(np.array(noise))
    result = fit_quietly(pd.DataFrame({"N": N, "D": D, "U": U, "loss": loss}), "data_constrained")
    if result is None:
        return
    grid = np.geomspace(1e5, 1e13, 41)
    for fixed in (1e6, 1e9, 1e12):
        in_n = result.predict(N=grid, D=np.full_like(grid, fixed), U=np.full_like(grid, 1e8))
        in_d = result.predict(N=np.full_like(grid, fixed), D=grid, U=np.full_like(grid, 1e8))
        for curve in (in_n, in_d):
            assert np.all(np.diff(curve) <= 1e-12 * curve[:-1]), (result.params, curve)
