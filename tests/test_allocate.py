"""Compute-optimal allocation, Approaches 1-3, on data with a planted answer."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CHINCHILLA_CSV, LAW, PAPER, PLANTED, isoflop_table

from scaling import allocate as allocate_from_package
from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.procedure import fit
from scaling.study.allocation import Allocation, allocate, isoflop_groups


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


SHIFT_A = 0.5  # the exponent planted in shifting_profiles


def shifting_profiles(noise: float = 0.001, seed: int = 0) -> pd.DataFrame:
    """IsoFLOP profiles whose shape changes with C, minima planted on N_opt = G C^SHIFT_A exactly.

    One grid of 13 sizes over 3 decades; each budget trains the sizes given 0.5 to 10^5 tokens per
    parameter, so at small budgets the minimum sits near the smallest size and most sizes lie above it.
    With u = ln(N / N_opt) the loss is L*(C) + f(u), f a Chinchilla-like IsoFLOP valley with its minimum
    at u = 0 (alpha = beta = 0.34), plus a penalty for too few optimizer steps: a run has e^-u times the
    steps of the budget's optimal run, and below 1/e of them its loss rises by s(C) (e^(u - 1) - 1)^2,
    with s(C) large at small budgets, whose runs have few steps to begin with: there big models lie far
    above the minimum and the profile is a hockey stick; at large budgets it is nearly a valley."""
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(1e7, 1e10, 13)
    rows = []
    for C in np.geomspace(1e18, 1e21, 6):
        n_opt = 2.5e7 * (C / 1e18) ** SHIFT_A
        for N in sizes[(C / (6 * sizes**2) >= 0.5) & (C / (6 * sizes**2) <= 1e5)]:
            u = np.log(N / n_opt)
            valley = 0.34 * np.exp(-0.34 * u) + 0.34 * np.exp(0.34 * u) - 0.68
            few_steps = 0.3 * (1e18 / C) ** 0.5 * np.maximum(np.exp(u - 1) - 1, 0) ** 2
            loss = 2.0 + 30 * C**-0.05 + valley + few_steps
            rows.append({"N": N, "C": C, "loss": loss * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)


def test_approach2_recovers_planted_exponent():
    # 0.2 % noise: a parabola through 5 sizes is noisier than one through all 9 (see docs/planning.md)
    result = allocate(isoflop_table(noise=0.002), approach=2, bootstrap=200, seed=0)
    assert result.approach == 2 and len(result.profiles) == 6
    assert result.a == pytest.approx(PLANTED.a, abs=0.02)
    assert result.b == pytest.approx(PLANTED.b, abs=0.02)
    assert result.ci["a"][0] < PLANTED.a < result.ci["a"][1]
    profile = result.profiles[0]
    assert not profile.left_out and profile.curve(np.array([profile.N_opt]))[0] == pytest.approx(
        profile.loss_opt
    )
    assert profile.used.sum() == 5 and profile.method == "window"  # 5 of the 9 sizes, around the lowest
    assert len(result.points) == 6 and set(result.points.columns) == {"C", "N", "D", "loss"}


def test_local_fits_recover_the_exponent_where_the_whole_profile_parabola_is_biased():
    for seed in range(3):
        table = shifting_profiles(seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ScalingWarning)  # no minimum at an edge: nothing left out
            whole = allocate(table, approach=2, profile_fit="parabola")
            local = allocate(table, approach=2)
        assert abs(whole.a - SHIFT_A) > 0.05  # pulled by the far, lopsided ends
        assert local.a == pytest.approx(SHIFT_A, abs=0.02)
        assert "5 sizes nearest" in local.source
    # Akima interpolates every point, so it needs quieter data than a parabola through 5 sizes
    akima = allocate(shifting_profiles(noise=0.0), approach=2, profile_fit="akima")
    assert akima.a == pytest.approx(SHIFT_A, abs=0.02) and "Akima" in akima.source
    assert akima.profiles[0].coef is None and akima.profiles[0].used.all()


def test_budget_with_its_minimum_at_an_edge_is_left_out_with_a_warning():
    table = shifting_profiles()
    small = table["C"] == table["C"].min()
    table = table[~small | (table["N"] > table.loc[small, "N"].min() * 1.5)]  # 1e18 loses its lowest size
    with pytest.warns(ScalingWarning, match=r"C = 1e\+18 FLOPs \(lowest loss at the smallest size tried\)"):
        result = allocate(table, approach=2, bootstrap=50)
    left_out = [p for p in result.profiles if p.left_out]
    assert len(left_out) == 1 and np.isnan(left_out[0].N_opt)
    assert pytest.approx(1e18) == left_out[0].C
    assert len(result.points) == 5 and result.points["C"].min() > 1e18  # never extrapolated
    assert result.a == pytest.approx(SHIFT_A, abs=0.02)
    assert "1 budget(s) left out" in result.source
    document = result.to_json()["profiles"]
    assert [p["left_out"] for p in document].count(None) == 5 and document[0]["N_opt"] is None
    assert document[1]["used"].count(True) == 5 and document[1]["window"] == 5


def test_bootstrap_resamples_within_profiles():
    table = shifting_profiles(noise=0.003)
    result = allocate(table, approach=2, bootstrap=100, seed=3)
    assert len(result.bootstrap) == 100
    lo, hi = result.ci["a"]
    assert lo < SHIFT_A < hi and hi - lo < 0.15
    assert allocate(table, approach=2, bootstrap=100, seed=3).ci == result.ci  # reproducible
    # each resample keeps every budget's compute: the runs are drawn within profiles, not across them
    one = allocate(table.iloc[::-1], approach=2, bootstrap=1, seed=5)
    assert len(one.bootstrap) == 1 and one.points["C"].tolist() == result.points["C"].tolist()


def test_published_isoflop_sweeps_reproduce_their_exponents():
    """Porian et al. 2024's sweeps (the full check of all 16 is analysis/isoflop_exponents.py)."""
    runs = pd.read_csv(CHINCHILLA_CSV.parent / "porian2024_isoflop.csv")
    for corpus, setup, published in (
        ("RefinedWeb", "last_layer_flops", 0.706),  # the whole-profile parabola gives 0.780
        ("RefinedWeb", "tuned_no_decay", 0.497),
        ("OpenWebText2", "kaplan_reproduction", 0.864),
    ):
        sweep = runs[(runs["dataset"] == corpus) & (runs["setup"] == setup)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScalingWarning)  # the smallest budgets' minima at an edge
            result = allocate(sweep[["C", "N", "D", "loss"]], approach=2)
        assert result.a == pytest.approx(published, abs=0.05), (corpus, setup)


def test_approach1_envelope_of_loss_curves(tmp_path):
    result = allocate(curve_sweep(tmp_path / "sweep"), approach=1, bootstrap=50)
    assert "loss curves of 16 runs" in result.source
    assert result.a == pytest.approx(PLANTED.a, abs=0.02)
    assert len(result.points) > 16  # frontier points come from inside the curves
    assert result.ci["a"][0] <= result.a <= result.ci["a"][1]
    # the final points alone all have one D: their frontier gives N_opt ~ C^1 by construction: refused
    with pytest.raises(UsageError, match="Approach 1: .*not identified by these runs .*one D"):
        allocate(tmp_path / "sweep", approach=1, use_curves=False)


def test_approach3_closed_form_with_intervals():
    table = pd.read_csv(CHINCHILLA_CSV).rename(columns={"Model Size": "N", "Training FLOP": "C"})
    table = table.drop(table["loss"].nlargest(5).index)
    fitted = fit(table, bootstrap=100, seed=1)
    result = allocate(table, approach=3, fit_result=fitted, budgets={"Chinchilla": 5.76e23})
    assert (
        result.a == pytest.approx(fitted.compute_optimal.a) and pytest.approx(1 / result.G) == result.G_D
    )
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
    with pytest.raises(UsageError, match="`approach` must be 1, 2 or 3"):
        allocate(table, approach=4)
    with pytest.raises(UsageError, match="law in N and D"):
        allocate(table, approach=3, law="kaplan_c")
    every_minimum_below = isoflop_table(off_centre=8)
    with (
        pytest.warns(ScalingWarning, match="lowest loss at the smallest size"),
        pytest.raises(UsageError, match="found 0 usable among 6 budgets"),
    ):
        allocate(every_minimum_below, approach=2)
    with pytest.raises(UsageError, match="`window` must be a whole number of at least 3 sizes"):
        allocate(table, approach=2, window=2)
    with pytest.raises(UsageError, match="`profile_fit` must be one of"):
        allocate(table, approach=2, profile_fit="cubic")


def test_one_object_answers_n_opt_d_opt_and_tokens_per_param_in_every_approach(tmp_path):
    """D_opt(C) = C / (6 N_opt(C)) (scaling.fitting.optimal): the power law each approach fits through D (b,
    G_D) agrees with it, since every point an approach fits has C = 6 N D."""
    C = np.geomspace(1e18, 1e26, 9)
    for result in (
        allocate(curve_sweep(tmp_path / "sweep"), approach=1),
        allocate(isoflop_table(), approach=2),
        allocate(isoflop_table(), approach=3),
    ):
        assert result.a + result.b == pytest.approx(1.0, abs=1e-9)
        coefficients = result.G * result.G_D
        assert coefficients == pytest.approx(1.0, rel=1e-9)
        np.testing.assert_allclose(result.D_opt(C), result.G_D * (C / 6) ** result.b, rtol=1e-9)
        np.testing.assert_allclose(6 * result.N_opt(C) * result.D_opt(C), C, rtol=1e-12)
        optimal = result.optimal
        np.testing.assert_allclose(optimal.tokens_per_param(C), result.D_opt(C) / result.N_opt(C))
        np.testing.assert_allclose(optimal.D_opt_for_params(optimal.N_opt(C)), optimal.D_opt(C), rtol=1e-9)
        for budget, ratio in result.tokens_per_param.items():
            assert ratio == pytest.approx(float(optimal.tokens_per_param(budget)), rel=1e-12)


def test_allocation_json_round_trip_format_and_compact_repr(tmp_path):
    """An allocation reads back from its JSON (all but the bootstrap samples); the repr stays one line."""
    for result in (
        allocate(curve_sweep(tmp_path / "sweep"), approach=1),
        allocate(isoflop_table(), approach=2, bootstrap=20, seed=0),
        allocate(isoflop_table(), approach=3, bootstrap=20, seed=0),
    ):
        document = result.to_json()
        assert document["format"] == "scaling.allocation/1"
        again = Allocation.from_json(json.loads(json.dumps(document)))
        assert json.dumps(again.to_json()) == json.dumps(document)
        assert again.describe() == result.describe()
        assert "\n" not in repr(result) and len(repr(result)) < 300
    with pytest.raises(UsageError, match="format 'scaling.fit/1'"):
        Allocation.from_json({**document, "format": "scaling.fit/1"})
