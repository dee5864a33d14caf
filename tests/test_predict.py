"""scaling predict: compute-optimal tokens for GPT-3 175B, budgets against hand calculations, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_usage_error

from scaling import hardware
from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.shapes import PRESETS, n_params
from scaling.study.prediction import Prediction, predict, resolve_params

# Hoffmann et al. 2022 as published (rounded) and Besiroglu et al. 2024's refit of the same data.
CHINCHILLA_ROUNDED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
EPOCH_REFIT = {"E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3658}


def write_fit(path, params, law="chinchilla"):
    path.write_text(json.dumps({"law": law, "params": params}))
    return str(path)


@pytest.mark.parametrize(
    ("params", "tokens", "per_param"),
    [(CHINCHILLA_ROUNDED, 23.3e12, 133.0), (EPOCH_REFIT, 3.08e12, 17.6)],
    ids=["chinchilla-rounded", "epoch-refit"],
)
def test_optimal_tokens_for_175b_reproduce_published(tmp_path, cli, params, tokens, per_param):
    fit_json = write_fit(tmp_path / "fit.json", params)
    out_json = tmp_path / "pred.json"
    args = ["predict", fit_json, "--params", "175B", "--optimal", "--json", str(out_json)]
    status, out, _ = cli(*args)
    assert status == 0
    doc = json.loads(out_json.read_text())
    assert doc["N"] == 175e9
    assert doc["D"] == pytest.approx(tokens, rel=0.02)
    assert doc["tokens_per_param"] == pytest.approx(per_param, rel=0.02)
    assert doc["C"] == pytest.approx(6 * doc["N"] * doc["D"])
    assert doc["regime"] == "balanced"
    assert "tokens" in out and "nats/token" in out


def test_epoch_refit_loss_of_gpt3_as_trained(tmp_path, cli):
    fit_json = write_fit(tmp_path / "fit.json", EPOCH_REFIT)
    out_json = tmp_path / "pred.json"
    args = ["predict", fit_json, "--params", "175B", "--tokens", "300B", "--json", str(out_json)]
    status, _, _ = cli(*args)
    assert status == 0
    doc = json.loads(out_json.read_text())
    for key in ("N", "D", "C", "loss", "loss_ci", "regime", "pf_days", "memory_gb"):
        assert key in doc
    assert set(doc["memory_gb"]) >= {"weights_fp32", "weights_bf16", "training_mixed_adam"}
    # E + A/N^alpha + B/D^beta by hand: 1.817 + 482 / 175e9^0.3478 + 2085.4 / 300e9^0.3658
    by_hand = 1.817 + 482.0 / 175e9**0.3478 + 2085.4 / 300e9**0.3658
    assert doc["loss"] == pytest.approx(by_hand, rel=1e-9)
    assert doc["loss"] == pytest.approx(2.01, abs=0.005)
    # GPT-3 trained 1.7 tokens/param against ~19 optimal: more than a factor sqrt(10) short of data
    assert doc["regime"] == "overfitting"
    assert doc["optimal_tokens_per_param"] == pytest.approx(18.7, rel=0.02)


def test_175b_budget_matches_hand_calculation():
    result = predict(FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT}), N="175B", D="300B")
    # FLOPs: 6 N D; attention adds 6 n_layer n_ctx d_model per token (96 layers, ctx 2048, d 12288)
    assert result.C == pytest.approx(6 * 175e9 * 300e9) == 3.15e23
    assert result.flops_with_attention == pytest.approx(3.15e23 + 6 * 96 * 2048 * 12288 * 300e9)
    assert result.pf_days == pytest.approx(3.15e23 / (1e15 * 86400))  # 3646 PF-days (GPT-3 paper: 3.64e3)
    assert result.pf_days == pytest.approx(3646, abs=1)
    assert result.gpu_days == pytest.approx(3.15e23 / (989e12 * 0.4 * 86400))  # H100 SXM at 40 % MFU
    # Memory: 4 / 2 / 16 bytes per parameter in decimal GB; 2800 GB of training state = 35 x 80 GB
    assert result.memory.weights_fp32 == pytest.approx(700.0)
    assert result.memory.weights_bf16 == pytest.approx(350.0)
    assert result.memory.training_mixed_adam == pytest.approx(2800.0)
    assert result.memory.gpus_80gb == 35
    assert result.shape["preset"] == "gpt3_175b"


def test_preset_name_resolves_through_shapes(tmp_path, cli):
    N, shape, preset = resolve_params("gpt3_175b")
    assert preset == "gpt3_175b" and shape == PRESETS["gpt3_175b"]
    assert N == n_params(shape) == pytest.approx(173.96e9, rel=1e-3)
    fit_json = write_fit(tmp_path / "fit.json", EPOCH_REFIT)
    out_json = tmp_path / "pred.json"
    status, _, _ = cli(
        "predict", fit_json, "--params", "gpt3_175b", "--tokens", "300B", "--gpu", "A100", "--mfu", "0.5",
        "--json", out_json,
    )  # fmt: skip
    assert status == 0
    doc = json.loads(out_json.read_text())
    # a named preset's memory counts its embeddings (50257 + 2048 positions) x 12288 too: ~174.6B params
    total = N + (50257 + 2048) * 12288
    assert doc["memory_gb"]["weights_fp32"] == pytest.approx(4 * total / 1e9)
    assert doc["gpu"] == "A100"
    assert doc["gpu_days"] == pytest.approx(doc["C"] / (312e12 * 0.5 * 86400))


def test_compute_optimal_for_compute_and_compute_mode():
    fitted = FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT})
    at_c = predict(fitted, C="3.85e24", optimal=True)
    assert at_c.mode == "optimal_for_compute"
    assert pytest.approx(3.85e24) == at_c.C
    assert pytest.approx(at_c.optimal_tokens_per_param) == at_c.D / at_c.N
    # the optimum at fixed C: moving N either way along C = 6 N D raises the loss
    for factor in (0.8, 1.25):
        other = predict(fitted, N=at_c.N * factor, C=3.85e24)
        assert other.mode == "compute" and pytest.approx(at_c.D / factor) == other.D
        assert other.loss > at_c.loss
    # and D_opt(N) inverts N_opt(C): the optimum for the optimal N is that same point
    back = predict(fitted, N=at_c.N, optimal=True)
    assert pytest.approx(at_c.D, rel=1e-9) == back.D


def test_bootstrap_interval_brackets_the_prediction():
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(1e7, 1e9, 6), 5)
    D = N * np.tile(np.geomspace(2, 200, 5), 6)
    p = EPOCH_REFIT
    loss = (p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]) * np.exp(rng.normal(0, 0.01, N.size))
    table = pd.DataFrame({"N": N, "D": D, "loss": loss})
    fitted = fit(table, bootstrap=40, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predict(fitted, N="175B", optimal=True)  # the fit records the range it covers
    lo, hi = result.loss_ci
    assert lo < result.loss < hi
    assert result.D_ci[0] < result.D < result.D_ci[1]
    assert result.extrapolation["N"] == pytest.approx(175)
    assert any(issubclass(w.category, ScalingWarning) and "extrapolation" in str(w.message) for w in caught)


def test_bootstrapped_law_without_an_allocation_predicts_at_given_tokens():
    N = np.geomspace(1e6, 1e9, 12)
    loss = (8.8e13 / N) ** 0.076 * np.exp(np.random.default_rng(0).normal(0, 0.01, N.size))
    fitted = fit(pd.DataFrame({"N": N, "D": 20 * N, "loss": loss}), law="kaplan_n", bootstrap=5, seed=0)
    result = predict(fitted, N="1e9", D="2e10")
    assert result.loss == pytest.approx((8.8e13 / 1e9) ** 0.076, rel=0.05) and result.D_ci is None


def test_long_extrapolation_warns_on_cli(tmp_path, cli):
    data = tmp_path / "runs.csv"
    pd.DataFrame({"N": [1e6, 1e7], "D": [1e8, 1e9], "loss": [3.0, 2.5]}).to_csv(data, index=False)
    fit_json = write_fit(tmp_path / "fit.json", EPOCH_REFIT)
    args = ["predict", fit_json, "--params", "175B", "--tokens", "300B", "--data", str(data)]
    status, out, err = cli(*args)
    assert status == 0
    assert "warning: long extrapolation" in err and "extrap." in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--params", "175X", "--tokens", "300B"], "not a number"),
        (["--params", "0", "--tokens", "300B"], "positive"),
        (["--params", "175B", "--tokens", "-3"], "must be a positive finite number, got '-3'"),
        (["--params", "175B", "--tokens", "nan"], "not a number"),
        (["--params", "1e17", "--tokens", "300B"], "sensible"),
        (["--params", "175B", "--tokens", "1e20"], "sensible"),
        (["--params", "175B"], "exactly one of"),
        (["--params", "175B", "--tokens", "300B", "--optimal"], "exactly one of"),
        (["--optimal"], "exactly one of"),
        (["--params", "175B", "--tokens", "300B", "--gpu", "TPU"], "unknown accelerator"),
        (["--params", "175B", "--tokens", "300B", "--mfu", "1.5"], "MFU"),
    ],
)
def test_bad_requests_exit_2_with_one_error_line(tmp_path, cli, args, says):
    fit_json = write_fit(tmp_path / "fit.json", EPOCH_REFIT)
    out_json = tmp_path / "pred.json"
    assert_usage_error(cli("predict", fit_json, *args, "--json", out_json), says)
    assert not out_json.exists()


def test_fit_of_another_law_is_refused(tmp_path, cli):
    kaplan_n = write_fit(tmp_path / "kn.json", {"N_c": 8.8e13, "alpha_N": 0.076}, law="kaplan_n")
    assert_usage_error(cli("predict", kaplan_n, "--params", "175B", "--optimal"), "compute-optimal")
    # a law in N alone still predicts at N (D does not enter it)
    status, out, _ = cli("predict", kaplan_n, "--params", "175B", "--tokens", "300B")
    assert status == 0 and "n/a" in out
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"runs": []}')
    assert_usage_error(cli("predict", garbage, "--params", "1B", "--tokens", "20B"), "not a fit result")
    garbage.write_text("{not json")
    assert_usage_error(cli("predict", garbage, "--params", "1B", "--tokens", "20B"))


def test_python_api_raises_usage_error():
    fitted = FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT})
    with pytest.raises(UsageError):
        predict(fitted, N=-1, D=1e9)
    with pytest.raises(UsageError):
        predict(fitted, N=1e9, D=1e9, C=6e18)


def test_hardware_table_and_device_names():
    assert hardware.get_accelerator("h100").peak_bf16_flops == 989e12
    assert hardware.get_accelerator("A100").peak_bf16_flops == 312e12
    assert hardware.get_accelerator("H200").peak_bf16_flops == 989e12
    assert hardware.accelerator_for_device("NVIDIA H100 80GB HBM3").name == "H100 SXM"
    assert hardware.accelerator_for_device("Tesla V100") is None
    assert hardware.model_flops_utilization(494.5e12, hardware.ACCELERATORS["H100"]) == pytest.approx(0.5)
    assert math.isclose(hardware.PF_DAY, 8.64e19)


def test_gpt3_analysis_script_explains_the_gap(tmp_path):
    # a small sweep of ours: a known law at CPU scale with 1 % noise (the script fits it like any sweep)
    rng = np.random.default_rng(2)
    N = np.repeat(np.geomspace(1e5, 1e7, 5), 4)
    D = N * np.tile([5.0, 20.0, 80.0, 320.0], 5)
    loss = (1.2 + 40.0 / N**0.3 + 60.0 / D**0.3) * np.exp(rng.normal(0, 0.01, N.size))
    sweep = tmp_path / "sweep.csv"
    pd.DataFrame({"N": N, "D": D, "loss": loss}).to_csv(sweep, index=False)
    script = [sys.executable, "analysis/gpt3_175b.py", "--sweep", str(sweep), "--bootstrap", "20"]
    script += ["--out", str(tmp_path)]
    done = subprocess.run(script, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    report = (tmp_path / "gpt3_175b.md").read_text()
    assert report == done.stdout.rstrip("\n") + "\n"
    doc = json.loads((tmp_path / "gpt3_175b.json").read_text())
    by_name = {s["name"].split(" (")[0]: s for s in doc["sets"]}
    assert by_name["Hoffmann et al."]["optimal"]["D"] == pytest.approx(23.3e12, rel=0.02)
    assert by_name["Besiroglu et al."]["optimal"]["D"] == pytest.approx(3.08e12, rel=0.02)
    assert by_name["Besiroglu et al."]["as_trained"]["loss"] == pytest.approx(2.01, abs=0.005)
    ours = by_name["our refit of the Chinchilla data"]
    assert ours["params"]["beta"] == pytest.approx(0.366, abs=0.01)  # reproduces Epoch's refit
    assert ours["as_trained"]["extrapolation"]["N"] == pytest.approx(175e9 / 16.18e9, rel=0.01)
    assert 0 < ours["backtest_mean_abs_rel_error"] < 0.05
    sweep_set = by_name["our sweep"]
    assert math.log10(sweep_set["as_trained"]["extrapolation"]["N"]) > 4  # 175B is 4+ decades past 1e7
    for text in ("a = beta/(alpha+beta)", "Table 3", "20 tokens per parameter", "decades", "backtest"):
        assert text in report


def test_data_constrained_prediction_counts_repeated_tokens(tmp_path, cli):
    muennighoff = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "R_D_star": 15.4,
                   "R_N_star": 5.3}
    fitted = FitResult.from_json({"law": "data_constrained", "params": muennighoff})
    fresh = predict(fitted, N="1B", D="100B")
    repeated = predict(fitted, N="1B", D="100B", U="5B")  # 20 epochs
    assert repeated.loss > fresh.loss
    assert repeated.regime == "overfitting" and "repeats" in repeated.regime_reason
    fit_json = write_fit(tmp_path / "dc.json", muennighoff, law="data_constrained")
    args = ["predict", fit_json, "--params", "1B", "--tokens", "100B", "--unique-tokens", "5B"]
    status, out, _ = cli(*args)
    assert status == 0 and f"{repeated.loss:.4g} nats/token" in out


def test_prediction_json_round_trip_format_and_compact_repr():
    result = predict(FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT}), N="175B", D="300B")
    document = result.to_json()
    assert list(document)[:2] == ["format", "N"] and document["format"] == "scaling.prediction/1"
    again = Prediction.from_json(json.loads(json.dumps(document)))
    assert again == result and again.describe() == result.describe()
    assert "\n" not in repr(result) and len(repr(result)) < 200
    with pytest.raises(TypeError):  # options are keyword-only
        predict(FitResult.from_json({"law": "chinchilla", "params": EPOCH_REFIT}), "175B", None, None, True)
