"""The runs a fit reads: the table checked against the law, with N from the chosen parameter count.

Units: N params, D tokens, C FLOPs, loss nats/token, U unique tokens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.design import Design
from scaling.fitting.laws import Inputs, Law
from scaling.runs.table import compute_frontier, load_runs

PARAMS_COLUMNS = ("N", "N_total")  # which parameter count feeds the law: non-embedding or all parameters
AXES = ("C", "N")  # what the cut-offs of a backtest cut: compute (default), or model size
AXIS_UNITS = {"C": "FLOPs", "N": "params"}
AXIS_WORDS = {"C": "compute", "N": "model-size"}


def check_params_column(name: str) -> str:
    if name not in PARAMS_COLUMNS:
        raise UsageError(f"`params_column` must be one of {', '.join(PARAMS_COLUMNS)}, got {name!r}")
    return name


def use_params_column(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The run table with the law's N taken from `column`: "N" (non-embedding parameters, as given) or
    "N_total" (all parameters, embeddings included; the table must carry it for every run). C is kept."""
    if check_params_column(column) == "N":
        return table
    values = pd.to_numeric(table[column], errors="coerce") if column in table else None
    if values is None or not (np.isfinite(values) & (values > 0)).all():
        raise UsageError(
            f"`params_column` {column} needs a column {column} (all parameters, embeddings included) with a "
            "positive number for every run (`scaling runs` writes it; else rename a column to it with "
            "`column_map`)"
        )
    return table.assign(N=values.astype(float))


@dataclass(frozen=True)
class FitData:
    """The runs a law is fitted on (`table`, the frontier for kaplan_c), its inputs `X`, their `loss` in
    nats/token, and the `design` of the whole table (`scaling.fitting.design`)."""

    table: pd.DataFrame
    X: Inputs
    loss: np.ndarray
    design: Design


def prepare_runs(table: pd.DataFrame | str | Path, law: Law, params_column: str = "N") -> FitData:
    """Check the table can identify `law` (its design first, `Design.check`); the runs it is fitted on
    (the frontier for kaplan_c), with N read from `params_column` (`use_params_column`)."""
    table = use_params_column(load_runs(table), params_column)
    design = Design.of(table)
    if "U" in law.inputs and ("U" not in table or table["U"].isna().any()):
        raise UsageError(
            f"law {law.name} needs column U (unique tokens in the training data) for every run; "
            "rename a column to U with `column_map`, or use law chinchilla"
        )
    design.check_points()
    loss = table["loss"].to_numpy(float)
    if np.ptp(loss) <= 1e-12 * loss.max():
        raise UsageError(
            f"all {len(loss)} losses are equal ({loss[0]:.6g} nats/token): there is no trend to fit"
        )
    design.check(law)
    if law.name == "kaplan_c":
        table = compute_frontier(table)
        loss = table["loss"].to_numpy(float)
    n, p = len(table), len(law.param_names)
    if n < p:
        raise UsageError(f"law {law.name} has {p} parameters but only {n} usable runs; give at least {p}")
    X = Inputs.make(**{k: table[k].to_numpy(float) for k in ("N", "D", "C", "U") if k in table})
    law.check_data(X)
    if n == p:
        warnings.warn(
            f"law {law.name}: as many runs as parameters ({n}); the fit interpolates and cannot test the law",
            ScalingWarning,
            stacklevel=3,
        )
    return FitData(table, X, loss, design)


def drop_smallest_sizes(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The runs of `table` whose N is not among its k smallest distinct model sizes."""
    if k == 0:
        return table
    sizes = np.unique(table["N"].to_numpy(float))
    if sizes.size <= k:
        return table.iloc[:0]
    return table[table["N"] >= sizes[k]]
