"""`scaling plan`: budgets kept, runs the trainer runs as planned, a gain over IsoFLOP, sequential design,
bad input refused, and a planned sweep that dry-runs and trains on the CPU."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import BIN, assert_usage_error

from scaling.errors import UsageError
from scaling.fitting.laws import Inputs, get_law
from scaling.fitting.result import FitResult, save_fit
from scaling.recipe import MIN_STEPS
from scaling.reference import EPOCH_PRIOR
from scaling.shapes import shape_for_params
from scaling.study.planning import SweepPlan, TargetVariance, flops_per_token, isoflop_design, plan
from scaling.study.prior import Prior

# A plan small enough to train on a CPU in seconds: 10k-100k parameters, 128-token context, 5 runs.
TINY = ["--budget", "8e9", "--target-params", "1M", "--optimal", "--min-params", "1e4", "--max-params",
        "1e5", "--n-ctx", "128", "--max-runs", "5"]  # fmt: skip


@pytest.fixture(scope="module")
def gpt3_plan():
    return plan("1e21", "175B", "3.7T")


def check_realisable(result, budget: float, max_runs: int, min_runs: int = 5) -> None:
    assert min_runs <= len(result.runs) <= max_runs
    assert result.spent == pytest.approx(sum(r.flops for r in result.runs), rel=1e-12)
    assert result.spent <= budget
    points = {}
    for r in result.runs:
        assert r.C == 6 * r.N * r.D
        assert r.flops == pytest.approx(r.C + 6 * r.n_layer * r.n_ctx * r.d_model * r.D)  # with attention
        assert r.steps * r.batch_size * r.n_ctx == r.D and r.steps >= MIN_STEPS  # whole batches, as trained
        assert r.d_model % r.n_head == 0
        points.setdefault((r.N, r.D), set()).add(r.seed)
    assert max(len(seeds) for seeds in points.values()) <= 2  # --max-repeats
    assert sum(len(seeds) for seeds in points.values()) == len(result.runs)  # replicates differ in seed


def test_gpt3_plan_keeps_the_budget_and_beats_isoflop(gpt3_plan):
    import scaling

    assert scaling.plan is plan  # the notebook spelling, `scaling.plan(...)`
    check_realisable(gpt3_plan, 1e21, 40)
    assert gpt3_plan.spent > 0.95e21  # the budget buys information: it is spent
    assert all(1e7 <= r.N <= 3.1e9 for r in gpt3_plan.runs)
    assert gpt3_plan.gain >= 1.5
    law = get_law("chinchilla")
    N, D = isoflop_design(law, EPOCH_PRIOR, gpt3_plan.spent)
    assert 6 * (N * D).sum() == pytest.approx(gpt3_plan.spent)
    C = (6 * N * D).reshape(4, 5)  # 4 budgets 4x apart, 5 sizes each over +-0.6 decade
    assert np.allclose(C, C[:, :1]) and np.allclose(C[1:, 0] / C[:-1, 0], 4.0)
    assert np.allclose(N.reshape(4, 5).max(1) / N.reshape(4, 5).min(1), 10**1.2)
    doc = gpt3_plan.to_json()
    assert {"N", "D", "C", "n_layer", "d_model", "n_head", "n_ctx", "gpu_hours"} <= set(doc["runs"][0])
    assert doc["spent"] == gpt3_plan.spent and doc["interval_width"] < doc["isoflop_interval_width"]
    hours = sum(r["gpu_hours"] for r in doc["runs"])  # 6ND at 40 % of an H100's 989 TFLOP/s
    assert hours == pytest.approx(gpt3_plan.spent / (0.4 * 989e12) / 3600)


def test_small_budgets_are_kept_and_a_design_that_cannot_identify_the_law_is_refused():
    options = {"optimal": True, "min_params": 1e4, "max_params": 1e5, "n_ctx": 128, "max_runs": 12}
    check_realisable(plan(1e12, "1M", **options), 1e12, 12)
    with pytest.raises(UsageError, match="no design that identifies the law"):
        plan(4e9, "1M", **options)  # 3 runs at most: all the budget buys


def identifies(result, p: int = 5) -> bool:
    points = {(r.N, r.D) for r in result.runs}
    return len({n for n, _ in points}) >= 3 and len({d for _, d in points}) >= 3 and len(points) >= p


def test_both_designs_keep_the_size_limits_and_the_plan_identifies_the_law():
    tiny = plan(8e9, "1M", optimal=True, min_params=1e4, max_params=1e5, n_ctx=128, max_runs=5)
    check_realisable(tiny, 8e9, 5)
    assert identifies(tiny)  # the c-optimal design alone put 5 runs on 2 sizes
    sizes = np.array([n for n, _ in tiny.isoflop_runs])
    assert sizes.min() >= 1e4 * 0.999 and sizes.max() <= 1e5 * 1.001  # was 50 to 6,676 params
    per_token = [flops_per_token(shape_for_params(n, n_ctx=128)) for n, _ in tiny.isoflop_runs]
    iso_flops = sum(d * f for (_, d), f in zip(tiny.isoflop_runs, per_token, strict=True))
    assert iso_flops == pytest.approx(tiny.spent, rel=1e-9)  # equal compute, attention counted in both


def test_attention_is_counted_in_the_budget_and_the_hours():
    long = plan(1e21, "175B", "3.7T", n_ctx=100_000, max_runs=10)
    check_realisable(long, 1e21, 10)
    assert long.spent <= 1e21 and sum(r.C for r in long.runs) < 0.5 * long.spent  # attention dominates
    hours = sum(r.gpu_hours for r in long.runs)
    assert hours == pytest.approx(long.spent / (0.4 * 989e12) / 3600)


def test_runs_so_far_sharpen_the_next_batch_and_cost_nothing(gpt3_plan):
    law = get_law("chinchilla")
    trained = pd.DataFrame({"N": [r.N for r in gpt3_plan.runs], "D": [r.D for r in gpt3_plan.runs]})
    noise = np.random.default_rng(0).lognormal(0.0, 0.01, len(trained))
    trained["loss"] = law.predict(EPOCH_PRIOR, N=trained["N"], D=trained["D"]) * noise
    alone = plan("1e20", "175B", "3.7T", max_runs=10)
    after = plan("1e20", "175B", "3.7T", max_runs=10, runs_so_far=trained)
    check_realisable(after, 1e20, 10)
    assert after.runs_so_far and len(after.runs_so_far) == len(trained)
    # what the first sweep told is kept: the next batch adds to it
    assert after.interval_width < min(alone.interval_width, gpt3_plan.interval_width)
    assert after.to_json()["runs_so_far"] == len(trained)


def test_the_criterion_is_the_delta_method_variance():
    # one prior sample, the design's information matrix by hand: Var = sigma^2 g^T (J^T J)^-1 g (+ ridge)
    law = get_law("chinchilla")
    theta = law.to_theta(EPOCH_PRIOR)[None]
    N, D = np.geomspace(1e7, 1e9, 6).repeat(2), np.tile([2e8, 2e10], 6)
    crit = TargetVariance(law, theta, N, D, (175e9, 3.7e12), noise=0.01)
    J = law.jacobian(theta[0], Inputs.make(N=N, D=D))[1]
    g = law.jacobian(theta[0], Inputs.make(N=[175e9], D=[3.7e12]))[1][0]
    M = J.T @ J / 0.01**2 + 1e-2 * np.eye(5)
    assert crit(np.ones(N.size)) == pytest.approx(g @ np.linalg.solve(M, g), rel=1e-9)
    # dVar/dc_i = -(g^T M^-1 J_i)^2 / sigma^2, by hand; a finite difference of this ill-conditioned M
    # agrees only to ~3e-3 and moves with the BLAS kernel, so it checks the sign and size alone
    u = J @ np.linalg.solve(M, g)
    assert crit.gradient(np.ones(N.size)) == pytest.approx(-(u**2) / 0.01**2, rel=1e-6)
    counts, step = np.ones(N.size), np.zeros(N.size)
    step[3] = 1e-4
    numeric = (crit(counts + step) - crit(counts - step)) / 2e-4
    assert crit.gradient(counts)[3] == pytest.approx(numeric, rel=1e-2)


def test_a_prior_fit_brings_its_bootstrap_and_a_law_that_cannot_answer_is_refused():
    law = get_law("chinchilla")
    rng = np.random.default_rng(0)
    boot = np.array([list(EPOCH_PRIOR.values())] * 100) * rng.lognormal(0, 0.02, (100, 5))
    fitted = FitResult("chinchilla", dict(EPOCH_PRIOR), 0.0, 100, True, bootstrap_params=boot)
    prior = Prior.from_fit(fitted, samples=64)
    assert prior.thetas.shape == (64, 5)
    rows = {tuple(np.round(law.natural(t), 9)) for t in prior.thetas}
    assert rows <= {tuple(np.round(b, 9)) for b in boot}
    kaplan = FitResult("kaplan_n", {"N_c": 8.8e13, "alpha_N": 0.076}, 0.0, 10, True)
    with pytest.raises(UsageError, match="cannot answer"):
        plan("1e21", "175B", "3.7T", prior=kaplan)


BAD = {
    "budget_for_2_runs": (["--budget", "1.2e9", *TINY[2:]], "too small for 3 runs"),
    "target_below_runs": (["--budget", "1e21", "--target-params", "1e6", "--optimal"], "below the runs"),
    "target_tokens_below_runs": (["--budget", "1e21", "--target-params", "175B", "--target-tokens", "1e6"],
                                 "below the runs"),
    "prior_cannot_answer": (["--budget", "1e21", "--target-params", "175B", "--optimal", "--prior",
                             "{kaplan}"], "cannot answer"),
    "prior_not_a_fit": (["--budget", "1e21", "--target-params", "175B", "--optimal", "--prior", "{csv}"],
                        "not a fit result"),
    "budget_not_a_number": (["--budget", "lots", "--target-params", "175B", "--optimal"], "not a number"),
    "unknown_gpu": ([*TINY, "--gpu", "TPU"], "unknown accelerator"),
    "both_targets": (["--budget", "1e21", "--target-params", "175B", "--optimal", "--target-tokens", "3T"],
                     "not allowed with"),
    "target_past_any_model": (["--budget", "1e21", "--target-params", "1e20", "--target-tokens", "3T"],
                              "past any sensible model"),
    "negative_budget": (["--budget", "-5", "--target-params", "175B", "--optimal"],
                        "--budget (FLOPs) must be a positive finite number, got '-5'"),
    "prior_at_its_bounds": (["--budget", "1e21", "--target-params", "175B", "--optimal", "--prior",
                             "{degenerate}"], "E = 2.1e-09, alpha = 5 at the bound of the fit's search"),
    "prior_not_converged": (["--budget", "1e21", "--target-params", "175B", "--optimal", "--prior",
                             "{unconverged}"], "the prior fit did not converge"),
}  # fmt: skip
def test_a_prior_without_intervals_is_widened_by_epochs_widths_or_refused():
    law = get_law("chinchilla")
    params = {"E": 1.9, "A": 300.0, "B": 900.0, "alpha": 0.3, "beta": 0.33}
    point = FitResult("chinchilla", params, 0.0, 50, True)
    prior = Prior.from_fit(point, samples=4000)
    assert "widened" in prior.source
    epoch = Prior.epoch(samples=4000)  # the same sd in theta as Epoch's intervals, around the fit's point
    assert prior.thetas.mean(0) == pytest.approx(law.to_theta(point.params), abs=0.03)
    assert prior.thetas.std(0) == pytest.approx(epoch.thetas.std(0), rel=0.05)
    params = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
    kaplan = FitResult("kaplan_nd", params, 0.0, 9, True)
    with pytest.raises(UsageError, match="refit it with --bootstrap"):
        Prior.from_fit(kaplan)


BAD_OUT = {
    "not_in_a_sweep_folder": "{tmp}/next.yaml",
    "not_yaml": "{tmp}/sweep/next.yml",
    "name_with_dots": "{tmp}/sweep/a.b.yaml",
    "under_a_file": "{csv}/sweep/next.yaml",
    "a_folder": "{tmp}/sweep/folder.yaml",
    "a_shipped_sweep_name": "{tmp}/sweep/demo.yaml",  # Hydra would run the shipped demo instead
}


@pytest.fixture
def files(tmp_path):
    kaplan = tmp_path / "kaplan.json"
    save_fit(FitResult("kaplan_n", {"N_c": 8.8e13, "alpha_N": 0.076}, 0.0, 10, True), kaplan)
    degenerate = tmp_path / "degenerate.json"  # E -> 0 and alpha at 5: planned 1.3e48 T tokens before
    save_fit(FitResult("chinchilla", {**EPOCH_PRIOR, "E": 2.1e-9, "alpha": 4.999}, 0.0, 10, True), degenerate)
    unconverged = tmp_path / "unconverged.json"
    save_fit(FitResult("chinchilla", dict(EPOCH_PRIOR), 0.0, 10, False), unconverged)
    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n1e7,1e9,3.0\n")
    (tmp_path / "sweep" / "folder.yaml").mkdir(parents=True)
    return {"kaplan": kaplan, "csv": csv, "tmp": tmp_path, "degenerate": degenerate,
            "unconverged": unconverged}  # fmt: skip


def outputs(tmp_path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", sorted(BAD) + [f"out/{k}" for k in sorted(BAD_OUT)])
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(case, files, tmp_path, cli):
    previous = tmp_path / "out" / "sweep" / "next.yaml"
    previous.parent.mkdir(parents=True)
    previous.write_text("a previous plan, kept\n")
    if case.startswith("out/"):
        args = [*TINY, "--out", BAD_OUT[case[4:]].format(**files), "--json", tmp_path / "plan.json"]
    else:
        args = [a.format(**files) for a in BAD[case][0]] + [
            "--out",
            previous,
            "--json",
            tmp_path / "plan.json",
        ]
    before = outputs(tmp_path)
    assert_usage_error(cli("plan", *args), *([] if case.startswith("out/") else [BAD[case][1]]))
    assert outputs(tmp_path) == before  # nothing written, nothing overwritten


def test_planned_sweep_dry_runs_and_trains_as_planned_on_the_cpu(tmp_path, cli, scaling_cache):
    out = tmp_path / "mysweeps" / "sweep" / "next.yaml"
    status, printed, err = cli(
        "plan", *TINY, "--out", out, "--json", tmp_path / "plan.json", "--figure", tmp_path / "plan.png"
    )
    assert status == 0, err
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["spent"] <= 8e9 and len(doc["runs"]) == 5
    assert (tmp_path / "plan.png").stat().st_size > 10_000 and (tmp_path / "plan.pdf").exists()
    planned = sorted((r["N"], r["D"]) for r in doc["runs"])

    def scaling_train(*args):
        return subprocess.run(
            [str(BIN / "scaling-train"), "--config-dir", str(out.parents[1]), "-m", "+sweep=next", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    dry = scaling_train("hydra.sweeper.dry_run=true")
    assert dry.returncode == 0, dry.stderr[-2000:]
    lines = [line for line in dry.stdout.splitlines() if "N=" in line]
    listed = sorted(
        (
            int(line.split("N=")[1].split()[0].replace(",", "")),
            int(line.split("D=")[1].split()[0].replace(",", "")),
        )
        for line in lines
    )
    assert listed == planned  # the trainer's own expansion: same shapes, same tokens, same batches
    assert not (tmp_path / "runs").exists()

    trained = scaling_train("train.evals=1", "train.eval_tokens=2048", "train.threads=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"{len(planned)} completed" in trained.stdout
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "next").glob("*/summary.json")]
    assert sorted((s["n_params"], s["tokens"]) for s in summaries) == planned
    assert sum(s["flops"] for s in summaries) == pytest.approx(sum(r["C"] for r in doc["runs"]))  # 6 N D
    assert doc["spent"] == pytest.approx(sum(r["flops"] for r in doc["runs"])) and doc["spent"] <= 8e9


def test_plan_json_round_trip_format_and_compact_repr(gpt3_plan):
    document = gpt3_plan.to_json()
    assert document["format"] == "scaling.plan/1"
    again = SweepPlan.from_json(json.loads(json.dumps(document)))
    assert json.dumps(again.to_json()) == json.dumps(document)
    assert again.describe() == gpt3_plan.describe() and again.sweep_yaml("x") == gpt3_plan.sweep_yaml("x")
    assert "\n" not in repr(gpt3_plan) and len(repr(gpt3_plan)) < 200
