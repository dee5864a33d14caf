"""The one-variable saturating laws L = E + A / X^alpha (saturating_n, saturating_d, saturating_c): planted
parameters recovered from one-axis families, the CLI round trip, and `--law auto` on a one-D family."""

import json

import numpy as np
import pandas as pd
import pytest

from scaling.errors import UsageError
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.select import choose_law

CHIN = {"E": 1.8, "A": 400.0, "B": 900.0, "alpha": 0.33, "beta": 0.30}  # the law behind every family
SIZES = np.geomspace(2e7, 3e9, 10)


def family(kind: str, noise: float = 0.003, seed: int = 0) -> pd.DataFrame:
    """A one-axis family of the Chinchilla law CHIN with log-normal noise: "one_d" (every size on 100B
    tokens), "one_n" (a 1B model on 10B-3T tokens), "one_ratio" (20 tokens per parameter)."""
    rng = np.random.default_rng(seed)
    N, D = {
        "one_d": (SIZES, np.full_like(SIZES, 1e11)),
        "one_n": (np.full_like(SIZES, 1e9), np.geomspace(1e10, 3e12, SIZES.size)),
        "one_ratio": (SIZES, 20 * SIZES),
    }[kind]
    loss = get_law("chinchilla").predict(CHIN, N=N, D=D) * np.exp(rng.normal(0, noise, N.size))
    return pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": loss})


@pytest.mark.parametrize(
    "law, kind, planted",
    [
        # one D: the D term is part of the floor, E' = E + B / D^beta
        ("saturating_n", "one_d", {"E": 1.8 + 900.0 / 1e11**0.30, "A": 400.0, "alpha": 0.33}),
        # one N: the N term is part of the floor
        ("saturating_d", "one_n", {"E": 1.8 + 400.0 / 1e9**0.33, "A": 900.0, "alpha": 0.30}),
    ],
)
def test_planted_one_axis_law_is_recovered(law, kind, planted):
    result = fit(family(kind), law=law)
    assert result.converged and result.law == law and set(result.params) == {"E", "A", "alpha"}
    assert result.params["E"] == pytest.approx(planted["E"], rel=0.02)
    assert result.params["alpha"] == pytest.approx(planted["alpha"], abs=0.04)
    assert abs(np.log(result.params["A"] / planted["A"])) < np.log(2.0)  # a scale times a power


def test_saturating_c_recovers_a_planted_compute_law_and_follows_a_ratio_family():
    planted = {"E": 1.7, "A": 3.0e3, "alpha": 0.16}
    C = np.geomspace(1e17, 1e22, 12)
    noise = np.exp(np.random.default_rng(1).normal(0, 0.002, C.size))
    loss = get_law("saturating_c").predict(planted, C=C) * noise
    runs = pd.DataFrame({"N": np.sqrt(C / 120), "D": np.sqrt(C * 20 / 6), "C": C, "loss": loss})
    result = fit(runs, law="saturating_c")
    assert result.converged
    assert result.params["E"] == pytest.approx(1.7, rel=0.02)
    assert result.params["alpha"] == pytest.approx(0.16, abs=0.02)
    # a Chinchilla family at 20 tokens per parameter, its largest model predicted from the others
    runs = family("one_ratio")
    small = fit(runs.iloc[:-1], law="saturating_c")
    top = runs.iloc[-1]
    assert float(small.predict(C=top["C"])[0]) / top["loss"] - 1 == pytest.approx(0, abs=0.01)


def test_three_distinct_values_are_needed():
    runs = family("one_d")
    two = runs[runs["N"].isin(SIZES[:2])]
    with pytest.raises(UsageError, match="saturating_n needs at least 3 distinct values of N"):
        fit(pd.concat([two, two.assign(loss=two["loss"] * 1.01)]), law="saturating_n")
    with pytest.raises(UsageError, match="saturating_d needs at least 3 distinct values of D"):
        fit(runs, law="saturating_d")


def test_cli_fit_and_predict_a_one_d_family(cli, tmp_path):
    csv, fit_json, pred_json = tmp_path / "runs.csv", tmp_path / "f.json", tmp_path / "p.json"
    runs = family("one_d")
    runs.iloc[:-1].to_csv(csv, index=False)
    status, out, _ = cli("fit", csv, "--law", "saturating_n", "--bootstrap", 60, "--json", fit_json)
    assert status == 0 and "L = E + A / N^alpha" in out
    argv = ("predict", fit_json, "--params", runs["N"].iloc[-1], "--tokens", "100B", "--json", pred_json)
    status, _, _ = cli(*argv)
    assert status == 0
    prediction = json.loads(pred_json.read_text())
    truth = runs["loss"].iloc[-1]
    assert prediction["loss"] / truth - 1 == pytest.approx(0, abs=0.01)
    lo, hi = prediction["loss_ci"]
    assert lo <= prediction["loss"] <= hi


def test_auto_picks_a_saturating_law_on_one_d_where_the_power_laws_miss():
    runs = family("one_d", noise=0.005, seed=2)
    train, top = runs.iloc[:-1], runs.iloc[-1]
    choice = choose_law(train, bootstrap=20)
    assert choice.law in ("saturating_n", "saturating_c")  # on one D, C is N times a constant: one law
    chosen = fit(choice.fit_table(train), law=choice.law)
    error = float(chosen.predict(N=top["N"], D=top["D"])[0]) / top["loss"] - 1
    assert abs(error) < 0.015
    # the catalogue before the saturating laws: a pure power law, which bends the wrong way
    old = choose_law(train, laws=("chinchilla", "kaplan_n", "kaplan_c"), bootstrap=20)
    old_fit = fit(old.fit_table(train), law=old.law)
    old_error = float(old_fit.predict(N=top["N"], D=top["D"])[0]) / top["loss"] - 1
    assert abs(old_error) > 2 * abs(error)


def test_the_reports_compute_curve_is_the_law_itself_for_saturating_c_only():
    from scaling.report.style import optimal_loss  # the report draws L(C) from this

    params, C = {"E": 1.7, "A": 3.0e3, "alpha": 0.16}, np.array([1e20, 1e22])
    np.testing.assert_allclose(optimal_loss("saturating_c", params, C), 1.7 + 3.0e3 / C**0.16, rtol=1e-12)
    assert optimal_loss("saturating_n", {"E": 2.0, "A": 400.0, "alpha": 0.34}, C) is None


def test_every_rolling_fold_can_fit_a_three_parameter_law():
    from scaling.fitting.backtest import MIN_FIT_POINTS, rolling_cutoffs

    runs = family("one_ratio").iloc[:5]  # five runs: cut-offs after the 3rd and 4th, not the 2nd
    cuts = rolling_cutoffs(runs)
    assert len(cuts) == 2 and all((runs["C"] <= c).sum() >= MIN_FIT_POINTS for c in cuts)
    choice = choose_law(runs, bootstrap=0)
    scored = {s.law for s in choice.scores if s.failed is None}
    assert {"saturating_n", "saturating_c"} <= scored  # before, their fold of two runs failed them
    with pytest.raises(UsageError, match=r"3 distinct \(N, D\) points at or below"):  # 4 runs: 1 cut-off
        choose_law(runs.iloc[:4])
    # a rerun of every size adds runs, not points: still one cut-off
    with pytest.raises(UsageError, match="give 1"):
        choose_law(pd.concat([runs.iloc[:4], runs.iloc[:4].assign(loss=runs["loss"].iloc[:4] * 1.001)]))
