"""Regimes: the law view on synthetic Chinchilla data, Kaplan's criterion, repeated data, the curve view on
synthetic curves and on a real tiny training run that repeats its data for many epochs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_usage_error

from scaling.errors import UsageError
from scaling.fitting.result import FitResult
from scaling.runs.table import read_metrics
from scaling.study.regimes import (
    BALANCED,
    OVERFITTING,
    UNDERFITTING,
    Regimes,
    Thresholds,
    analyze_curve,
    classify,
    effective_tokens,
    evaluation_noise,
    kaplan_overfit_penalty,
    law_regime,
    pooled_noise,
)

EPOCH_REFIT = {"E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3658}
# Kaplan et al. 2020, eq. 1.5: N_c = 6.4e13 params, D_c = 1.8e13 tokens, alpha_N 0.076, alpha_D 0.103
KAPLAN = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}


def chinchilla_loss(N, D, p=EPOCH_REFIT):
    return p["E"] + p["A"] / np.asarray(N) ** p["alpha"] + p["B"] / np.asarray(D) ** p["beta"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """IsoFLOP profiles from a known law (1 % noise) plus runs planted at D_opt / 20 and 20 D_opt."""
    rng = np.random.default_rng(0)
    fitted = FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT})
    optimal = fitted.compute_optimal
    rows = []
    for C in np.geomspace(1e18, 1e22, 5):
        n_opt, d_opt = optimal.N_opt(C), optimal.D_opt(C)
        for factor in np.geomspace(1 / 8, 8, 7):  # D from D_opt / 8 to 8 D_opt at this compute
            rows.append({"D": d_opt * factor, "N": n_opt / factor, "kind": "profile"})
        for factor, kind in ((1 / 20, "planted_over"), (20.0, "planted_under"), (1.0, "planted_balanced")):
            rows.append({"D": d_opt * factor, "N": n_opt / factor, "kind": kind})
    table = pd.DataFrame(rows)
    table["loss"] = chinchilla_loss(table["N"], table["D"]) * np.exp(rng.normal(0, 0.01, len(table)))
    table = table.sample(frac=1.0, random_state=1).reset_index(drop=True)  # row order must survive
    path = tmp_path_factory.mktemp("planted") / "runs.csv"
    table.to_csv(path, index=False)
    return table, path


def test_planted_runs_labelled_from_the_fitted_law(planted, tmp_path, cli):
    table, path = planted
    out = tmp_path / "regimes.json"
    status, printed, _ = cli("regimes", path, "--json", out)
    assert status == 0
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == len(table)
    for run, (_, row) in zip(runs, table.iterrows(), strict=True):
        assert run["N"] == pytest.approx(row["N"]) and run["D"] == pytest.approx(row["D"])  # input order
        assert {"N", "D", "regime", "reason"} <= set(run)
        if row["kind"] == "planted_over":
            assert run["regime"] == OVERFITTING and "data-limited" in run["reason"]
            assert run["data_ratio"] == pytest.approx(1 / 20, rel=0.5)
        elif row["kind"] == "planted_under":
            assert run["regime"] == UNDERFITTING and "capacity-limited" in run["reason"]
            assert run["data_ratio"] == pytest.approx(20, rel=0.5)
        elif row["kind"] == "planted_balanced":
            assert run["regime"] == BALANCED
        # loss lost against the optimal allocation at the same compute: zero at the optimum, else positive
        assert run["loss_lost"] >= -1e-3
    over = [r["loss_lost"] for r, k in zip(runs, table["kind"], strict=True) if k == "planted_over"]
    assert min(over) > 0.05  # a factor 20 off costs several percent of ~2.5 nats/token
    assert "OVERFITTING" in printed and "UNDERFITTING" in printed


def test_band_is_an_option(planted, tmp_path, cli):
    _, path = planted
    out = tmp_path / "regimes.json"
    assert cli("regimes", path, "--band", "30", "--json", out).status == 0
    runs = json.loads(out.read_text())["runs"]
    assert {r["regime"] for r in runs} == {BALANCED}  # nothing lies 30x off D_opt
    assert json.loads(out.read_text())["thresholds"]["band"] == 30
    assert_usage_error(cli("regimes", path, "--band", "0.5"))


def test_kaplan_criterion_matches_kaplans_boundary():
    kaplan = FitResult.from_json({"law": "kaplan_nd", "params": KAPLAN})
    N = 1e9
    boundary = 5.5e3 * N**0.738  # Kaplan et al.: penalty 2 % at D ~ 5e3 N^0.74
    assert kaplan_overfit_penalty(KAPLAN, N, boundary) == pytest.approx(0.02, rel=0.05)
    small = law_regime(kaplan, N, boundary / 4)
    assert small.regime == OVERFITTING and "Kaplan" in small.reason and small.kaplan_penalty > 0.02
    large = law_regime(kaplan, N, boundary * 4)
    assert large.kaplan_penalty < 0.02 and "Kaplan" not in large.reason
    stricter = law_regime(kaplan, N, boundary * 4, thresholds=Thresholds(kaplan_penalty=0.001))
    assert stricter.regime == OVERFITTING


def test_repeated_data_counts_by_effective_size_and_epochs_past_r_d_star_overfit():
    fitted = FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT})
    optimal = fitted.compute_optimal
    n_opt, d_opt = float(optimal.N_opt(1e20)), float(optimal.D_opt(1e20))
    fresh = law_regime(fitted, n_opt, d_opt)
    assert fresh.regime == BALANCED and fresh.effective_tokens is None
    # the same run on 1/40 of the unique data: 40 epochs, 39 repeats > R_D* = 15.4
    repeated = law_regime(fitted, n_opt, d_opt, U=d_opt / 40)
    assert repeated.regime == OVERFITTING and "repeats" in repeated.reason
    assert repeated.effective_tokens < d_opt / 40 * (1 + 15.4)
    # a few epochs are nearly free: D' close to D, still balanced
    few = law_regime(fitted, n_opt, d_opt, U=d_opt / 2)
    assert few.regime == BALANCED and few.effective_tokens == pytest.approx(d_opt, rel=0.05)
    assert law_regime(fitted, n_opt, d_opt, U=d_opt / 40, thresholds=Thresholds(max_repeats=50)).regime in (
        BALANCED, OVERFITTING,
    )


def test_law_without_allocation_is_refused():
    kaplan_n = FitResult.from_json({"law": "kaplan_n", "params": {"N_c": 8.8e13, "alpha_N": 0.076}})
    with pytest.raises(UsageError, match="compute-optimal"):
        law_regime(kaplan_n, 1e9, 1e10)


# ---- curve view on synthetic curves ----------------------------------------------------------------


def curve(val, train, tokens_per_step=1000):
    steps = np.arange(len(val)) * 100
    tokens = steps * tokens_per_step + 1000
    return pd.DataFrame({"step": steps, "tokens": tokens, "val_loss": val, "train_loss": train})


def test_curve_rising_held_out_loss_gives_overfitting_and_onset():
    val = np.r_[np.linspace(3.0, 2.0, 10), np.linspace(2.0, 2.4, 10)[1:]]
    train = np.linspace(3.0, 1.0, len(val))
    result = analyze_curve(curve(val, train))
    assert result.regime == OVERFITTING
    assert "rose" in result.reason
    # gap criterion fires a little earlier or at the minimum; either way within the minimum's neighbourhood
    assert 500 <= result.onset_step <= 900


def test_curve_growing_gap_while_held_out_flat():
    n = 20
    train = np.linspace(2.5, 1.2, n)
    val = np.r_[np.linspace(2.6, 2.0, 8), np.full(n - 8, 2.0) - np.linspace(0, 0.005, n - 8)]
    result = analyze_curve(curve(val, train))
    assert result.regime == OVERFITTING and "gap" in result.reason
    assert 500 <= result.onset_step <= 800


def test_curve_repeats_past_r_d_star():
    n = 20
    val = np.linspace(3.0, 2.0, n)  # still improving: only the repeats say overfitting
    result = analyze_curve(curve(val, val - 0.01), unique_tokens=100_000)
    assert result.regime == OVERFITTING and "repeats" in result.reason
    # tokens / U - 1 > 15.4 first at tokens > 1.64e6: evaluation 17 (step 1700, 1_701_000 tokens)
    assert result.onset_step == 1700
    assert result.epochs == pytest.approx(1_901_000 / 100_000)
    assert analyze_curve(curve(val, val - 0.01), unique_tokens=1e6).regime != OVERFITTING


def test_curve_still_falling_steeply_is_undertrained_and_flat_is_balanced():
    n = 20
    tokens = np.geomspace(1e4, 1e6, n)
    steep = 1.0 + 100.0 / tokens**0.4  # 2.6 % lower over the last 20 % of the tokens
    frame = pd.DataFrame({"step": np.arange(n), "tokens": tokens, "val_loss": steep, "train_loss": steep})
    result = analyze_curve(frame)
    assert result.regime == UNDERFITTING and "undertrained" in result.reason
    flat = 2.0 + 5.0 / (tokens * 1e6) ** 0.5
    frame = frame.assign(val_loss=flat, train_loss=flat)
    assert analyze_curve(frame).regime == BALANCED


def test_curve_diverged_and_too_short():
    val = np.array([3.0, 2.5, np.nan])
    assert analyze_curve(curve(val, val)).regime == "diverged"
    assert analyze_curve(curve(np.array([3.0, 2.0]), np.array([3.0, 2.0]))).regime == BALANCED
    with pytest.raises(UsageError, match="val_loss"):
        analyze_curve(pd.DataFrame({"step": [0], "tokens": [1]}))


def test_classify_without_enough_runs_warns_and_gives_unknown():
    table = pd.DataFrame({"N": [1e6, 2e6], "D": [1e8, 1e8], "C": [6e14, 1.2e15], "loss": [3.0, 2.9]})
    with pytest.warns(UserWarning, match="too few"):
        labels = classify(table).labels
    assert list(labels["regime"]) == ["unknown", "unknown"]


# ---- curve view on a real training run -------------------------------------------------------------

# GPT tiny_100k on 1,024 unique tokens of the built-in corpus for 80k tokens: 78 epochs, memorised.
OVERFIT_RUN = [
    "model=tiny_100k", "data.unique_tokens=1024", "train.tokens=80000", "train.lr=3e-3", "train.batch_size=8",
    "train.evals=10", "train.eval_tokens=4096", "train.seed=0",
    "train.threads=1",  # tiny matrices: one thread beats two contending ones (11 s against 50 s here)
]


@pytest.fixture(scope="module")
def overfit_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("sweep")
    app = Path(sys.executable).with_name("scaling-train")
    subprocess.run([str(app), *OVERFIT_RUN, f"hydra.run.dir={sweep / 'repeat_1k'}"], cwd=sweep, check=True,
                   capture_output=True, text=True)
    return sweep


@pytest.mark.slow
def test_real_run_on_repeated_data_overfits_from_its_curves(overfit_sweep, tmp_path, cli):
    run = overfit_sweep / "repeat_1k"
    metrics = read_metrics(run)
    result = analyze_curve(metrics, unique_tokens=1024)
    assert result.regime == OVERFITTING
    assert result.epochs == pytest.approx(78, rel=0.01)
    # the curves themselves show it (not only the epoch count): held-out loss rose or the gap grew
    assert "held-out loss rose" in result.reason or "gap grew" in result.reason
    best = int(metrics.loc[metrics["val_loss"].idxmin(), "step"])
    assert 0 < result.onset_step <= best < int(metrics["step"].max())
    assert result.final_val_loss - result.final_train_loss > 0.5  # memorised: train far below held-out

    out = tmp_path / "regimes.json"
    printed = cli("regimes", overfit_sweep, "--json", out)
    assert printed.status == 0
    assert "too few to fit" in printed.err  # one run cannot fit a law: curve view only
    (labelled,) = json.loads(out.read_text())["runs"]
    assert labelled["regime"] == OVERFITTING and labelled["curve_regime"] == OVERFITTING
    assert labelled["onset_step"] == result.onset_step and labelled["run"] == str(run)
    assert labelled["U"] == 1024 and labelled["reason"].startswith("curves:")
    assert f"overfitting began at step {result.onset_step}" in printed.out


# Muennighoff et al. 2023's fit (their eq. 5-6 with R_D* 15.4, R_N* 5.3)
MUENNIGHOFF = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "R_D_star": 15.4,
               "R_N_star": 5.3}


def test_data_constrained_fit_gives_effective_data_from_the_law():
    fitted = FitResult.from_json({"law": "data_constrained", "params": MUENNIGHOFF})
    N, D, U = 1e8, 4e9, 1e9  # 4 epochs
    result = law_regime(fitted, N, D, U)
    assert result.effective_tokens == pytest.approx(effective_tokens(D, U, 15.4), rel=1e-9)
    assert U < result.effective_tokens < D and result.repeats == pytest.approx(3)
    # the loss lost against the optimum counts the repeats: more than with fresh data
    assert result.loss_lost > law_regime(fitted, N, D, D).loss_lost


def test_kaplan_law_and_bad_input_on_the_cli(planted, tmp_path, cli):
    _, path = planted
    out = tmp_path / "kaplan.json"
    assert cli("regimes", path, "--law", "kaplan_nd", "--json", out).status == 0
    doc = json.loads(out.read_text())
    assert doc["law"]["law"] == "kaplan_nd" and all("kaplan_penalty" in r for r in doc["runs"])
    assert_usage_error(cli("regimes", tmp_path / "missing.csv"))
    garbage = tmp_path / "fit.json"
    garbage.write_text("[1, 2]")
    assert_usage_error(cli("regimes", path, "--fit", garbage, "--json", out))
    assert json.loads(out.read_text())["law"]["law"] == "kaplan_nd"  # the earlier output is intact


# ---- the noise floor of the curve view -------------------------------------------------------------


def test_flat_noisy_curve_has_no_onset_and_a_real_rise_has_one():
    rng = np.random.default_rng(1)
    n = 8
    train = np.linspace(2.12, 2.08, n)  # no growing gap: only the held-out loss's own level is judged
    flat_runs = [2.1 + rng.normal(0, 0.02, n) for _ in range(30)]  # scatter of 1 % of the loss
    pooled = pooled_noise([curve(v, train) for v in flat_runs])
    assert 0.01 < pooled < 0.03  # the scatter is estimated from the runs
    # Without the noise floor, a 1 % rise of the noisy end over the lowest evaluation fires on many runs.
    naive = sum(np.median(v[-3:]) > v.min() * 1.01 for v in flat_runs)
    assert naive >= 5
    assert all(analyze_curve(curve(v, train), noise=pooled).onset_step is None for v in flat_runs)
    # The same scatter on a curve that rises 0.15 nats/token after its minimum: the onset is found.
    rise = np.r_[np.linspace(2.4, 2.1, 4), np.linspace(2.1, 2.25, 5)[1:]]
    found = analyze_curve(curve(rise + rng.normal(0, 0.02, n), train), noise=pooled)
    assert found.regime == OVERFITTING and found.onset_step is not None
    assert 200 <= found.onset_step <= 500 and found.eval_noise >= pooled


def test_evaluation_noise_of_a_smooth_curve_is_zero_and_of_scatter_its_deviation():
    assert evaluation_noise(np.linspace(3.0, 2.0, 10)) == pytest.approx(0.0, abs=1e-12)
    scatter = np.random.default_rng(2).normal(0, 0.05, 4000)
    assert evaluation_noise(scatter) == pytest.approx(0.05, rel=0.05)


def test_regimes_are_a_result_with_counts_and_a_json_round_trip(planted):
    table, _ = planted
    regimes = classify(table, curves=False)
    assert list(regimes.labels.index) == list(table.index) and sum(regimes.counts.values()) == len(table)
    document = regimes.to_json()
    assert document["format"] == "scaling.regimes/1" and document["law"]["law"] == "chinchilla"
    again = Regimes.from_json(json.loads(json.dumps(document)))
    assert json.dumps(again.to_json(), sort_keys=True) == json.dumps(document, sort_keys=True)
    assert again.describe() == regimes.describe() and again.counts == regimes.counts
    assert "\n" not in repr(regimes) and len(repr(regimes)) < 200
