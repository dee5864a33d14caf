"""Compute-optimal allocation, Approaches 1-3, on data with a planted answer."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CHINCHILLA_CSV, LAW, PAPER, PLANTED, isoflop_table

from scaling import allocate as allocate_from_package
from scaling.allocate import allocate, isoflop_groups
from scaling.errors import ScalingWarning, UsageError
from scaling.fit import fit


def curve_sweep(root: Path, seed: int = 0) -> Path:
    """Run folders with loss curves (metrics.jsonl) of 16 model sizes, each trained far past optimal."""
    rng = np.random.default_rng(seed)
    for i, N in enumerate(np.geomspace(1e7, 1e10, 16)):
        folder = root / str(i)
        folder.mkdir(parents=True)
        tokens = np.geomspace(1e8, 2e12, 60)
        loss = LAW.predict(PAPER, N=N, D=tokens) * np.exp(rng.normal(0, 0.002, tokens.size))
        (folder / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": k, "tokens": d, "flops": 6 * N * d, "val_loss": v}) + "\n"
                    for k, (d, v) in enumerate(zip(tokens, loss, strict=True)))
        )  # fmt: skip
        summary = {"status": "completed", "n_params": N, "tokens": tokens[-1], "flops": 6 * N * tokens[-1],
                   "val_loss": loss[-1]}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
    return root


def test_isoflop_grouping_within_one_percent():
    table = pd.DataFrame({"C": [1e18, 1.005e18, 1.009e18, 1.05e18, 2e18], "N": 1.0, "loss": 1.0})
    assert [sorted(g.tolist()) for g in isoflop_groups(table)] == [[0, 1, 2], [3], [4]]


def test_approach2_recovers_planted_exponent():
    result = allocate(isoflop_table(), approach=2, bootstrap=200, seed=0)
    assert result.approach == 2 and len(result.profiles) == 6
    assert result.a == pytest.approx(PLANTED["a"], abs=0.02)
    assert result.b == pytest.approx(PLANTED["b"], abs=0.02)
    assert result.ci["a"][0] < PLANTED["a"] < result.ci["a"][1]
    profile = result.profiles[0]
    assert profile.inside and profile.parabola(np.array([profile.N_opt]))[0] == pytest.approx(
        profile.loss_opt
    )
    assert len(result.points) == 6 and set(result.points.columns) == {"C", "N", "D", "loss"}


def test_approach1_envelope_of_loss_curves(tmp_path):
    result = allocate(curve_sweep(tmp_path / "sweep"), approach=1, bootstrap=50)
    assert "loss curves of 16 runs" in result.source
    assert result.a == pytest.approx(PLANTED["a"], abs=0.02)
    assert len(result.points) > 16  # frontier points come from inside the curves
    assert result.ci["a"][0] <= result.a <= result.ci["a"][1]
    final_only = allocate(tmp_path / "sweep", approach=1, use_curves=False)
    assert "final points" in final_only.source


def test_approach3_closed_form_with_intervals():
    table = pd.read_csv(CHINCHILLA_CSV).rename(columns={"Model Size": "N", "Training FLOP": "C"})
    table = table.drop(table["loss"].nlargest(5).index)
    fitted = fit(table, bootstrap=100, seed=1)
    result = allocate(table, approach=3, fit_result=fitted, budgets={"Chinchilla": 5.76e23})
    assert result.a == pytest.approx(fitted.compute_optimal["a"]) and pytest.approx(
        1 / result.G
    ) == result.G_D
    assert result.ci["a"] == pytest.approx(fitted.ci["a"])
    # Epoch's refit: about 20 tokens per parameter at Chinchilla's budget, not Hoffmann's ~ 70B / 1.4T
    ratio = result.tokens_per_param[5.76e23]
    assert 15 < ratio < 25
    assert result.tokens_per_param_ci[5.76e23][0] < ratio < result.tokens_per_param_ci[5.76e23][1]
    assert result.D_opt(5.76e23) / result.N_opt(5.76e23) == pytest.approx(ratio)
    document = result.to_json()
    assert set(document) >= {"approach", "a", "b", "ci", "tokens_per_param"}
    assert document["tokens_per_param"] == {"5.76e+23": pytest.approx(ratio)}


def test_default_budgets_and_package_export():
    result = allocate_from_package(isoflop_table(), approach=2)
    assert "largest run" in result.budgets and any("GPT-3 175B" in k for k in result.budgets)
    assert "tokens/param" in result.describe()


def test_allocation_bad_input():
    table = isoflop_table()
    with pytest.raises(UsageError, match="IsoFLOP profiles"):
        allocate(table.assign(C=np.geomspace(1e18, 1e21, len(table))), approach=2)
    with pytest.raises(UsageError, match="approach must be 1, 2 or 3"):
        allocate(table, approach=4)
    with pytest.raises(UsageError, match="law in N and D"):
        allocate(table, approach=3, law="kaplan_c")
    with pytest.warns(ScalingWarning, match="outside the model sizes"):
        allocate(isoflop_table(off_centre=8), approach=2)  # every minimum below the sizes tried
