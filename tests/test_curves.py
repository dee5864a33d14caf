"""Learning curves: curve tables, the Multi-Power Law and its N-dependent extension, `scaling fit --curves`
and `scaling predict --schedule`. Curves are made from a planted law on small schedules (a few thousand
steps), so every fit here takes about a second."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_usage_error

from scaling.errors import UsageError
from scaling.fitting.curves import CurveDesign, fit_curves, law_prediction, load_curve_fit
from scaling.runs.curves import Schedule, load_curves, read_schedule

PLANTED = np.array([3.0, 0.55, 0.5, 400.0, 2.0, 0.6, 0.6])  # L0 A alpha B C beta gamma, near the paper's 25M
PLANTED_N = np.array([2.0, 0.8, 0.3, 0.6, 0.1, 0.45, 450.0, 0.1, 2.0, 0.6, 0.6])  # mpl_n: E P p A a ... gamma
PEAK, WARMUP = 3e-4, 100


def schedule_rows(kind: str, total: int, every: int = 50) -> pd.DataFrame:
    """(step, lr) rows of a schedule, every `every` steps plus its corners; warmup from 0 implied."""
    steps = np.arange(WARMUP, total + 1, every)
    if kind == "cosine":
        lr = 3e-5 + 0.5 * (PEAK - 3e-5) * (1 + np.cos(np.pi * (steps - WARMUP) / (total - WARMUP)))
    elif kind == "constant":
        lr = np.full(len(steps), PEAK)
    elif kind.startswith("step"):  # PEAK until half-way, then PEAK / 10 (a jump: rows on both sides)
        half = total // 2
        steps = np.union1d(steps, [half - 1, half])
        lr = np.where(steps < half, PEAK, PEAK / 10)
    elif kind == "wsd":  # stable, then linear to 0 over the last 20 %
        start = int(0.8 * total)
        steps = np.union1d(steps, [start])
        lr = np.where(steps < start, PEAK, PEAK * (total - steps) / (total - start))
    return pd.DataFrame({"step": steps, "lr": lr})


def curve_table(specs, law="mpl", theta=PLANTED, noise=0.0, seed=0) -> pd.DataFrame:
    """A curve table of runs (name, N, kind, total steps) whose losses follow `law` at `theta`."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, N, kind, total in specs:
        rows = schedule_rows(kind, total)
        schedule = Schedule.from_rows(rows["step"].to_numpy(), rows["lr"].to_numpy())
        loss = law_prediction(law, theta, CurveDesign.of(schedule, rows["step"].to_numpy(float), N))[0]
        loss = loss * np.exp(noise * rng.standard_normal(len(loss)))
        parts.append(rows.assign(run=name, N=N, tokens=rows["step"] * 4096, loss=loss))
    return pd.concat(parts)[["run", "N", "step", "tokens", "lr", "loss"]]


FIT_SPECS = [
    ("cos2k", 1e8, "cosine", 2000), ("const2k", 1e8, "constant", 2000), ("step1k", 1e8, "step", 1200),
]


def write(table: pd.DataFrame, path) -> str:
    table.to_csv(path, index=False)
    return str(path)


# ---- schedules and the sum behind the loss drop ------------------------------------------------------------
def test_schedule_area_is_the_exact_integral_and_starts_with_a_linear_warmup():
    schedule = Schedule.from_rows(np.array([10.0, 20.0, 30.0]), np.array([1.0, 1.0, 0.0]))
    assert schedule.steps[0] == 0 and schedule.lrs[0] == 0  # no row at step 0: warmup from 0
    assert schedule.area(np.array([10.0, 20.0, 25.0, 30.0])) == pytest.approx([5.0, 15.0, 18.75, 20.0])
    assert schedule.peak_step == 10.0


def test_quadrature_matches_the_papers_per_step_sum():
    """The law on the grid against the paper's code's per-step sums (src/evaluation.py) on a 3000-step
    cosine and a schedule with a jump."""
    L0, A, alpha, B, C, beta, gamma = PLANTED
    for kind in ("cosine", "step"):
        total = 3000
        rows = schedule_rows(kind, total, every=1)
        schedule = Schedule.from_rows(rows["step"].to_numpy(), rows["lr"].to_numpy())
        lrs = schedule.lr(np.arange(total + 1))
        lr_sum, gap = np.cumsum(lrs), np.r_[0.0, np.diff(lrs)]
        points = np.arange(200, total + 1, 100)
        exact = [L0 + A * lr_sum[s] ** -alpha + B * np.sum(gap[1:s + 1] * (1 - (1 + C * np.maximum(
            lrs[1:s + 1], 1e-30) ** -gamma * (lr_sum[s] - lr_sum[:s])) ** -beta)) for s in points]
        sparse = schedule_rows(kind, total)  # what a curve table logs: every 50 steps and the corners
        sparse = Schedule.from_rows(sparse["step"].to_numpy(), sparse["lr"].to_numpy())
        ours = law_prediction("mpl", PLANTED, CurveDesign.of(sparse, points.astype(float), 1e8))[0]
        # relative: the sum over whole steps and the integral differ by ~lr/2 in the LR area, which shows
        # only early, at small areas
        relative = np.abs(ours / exact - 1)
        assert relative.max() < 1e-3 and relative.mean() < 1e-4, (kind, relative.max(), relative.mean())


@pytest.mark.parametrize("law, theta, N", [("mpl", PLANTED, 1e8), ("mpl_n", PLANTED_N, 3e7),
                                          ("annealing_area", np.array([3.0, 0.55, 0.5, 300.0, 200.0]), 1e8)])
def test_analytic_jacobian_matches_finite_differences(law, theta, N):
    rows = schedule_rows("step", 1500)
    design = CurveDesign.of(Schedule.from_rows(rows["step"].to_numpy(), rows["lr"].to_numpy()),
                            rows["step"].to_numpy(float), N)
    _, jac = law_prediction(law, theta, design, jacobian=True)
    for i in range(len(theta)):
        h = 1e-6 * max(abs(theta[i]), 1e-3)
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numeric = (law_prediction(law, up, design)[0] - law_prediction(law, down, design)[0]) / (2 * h)
        assert np.allclose(jac[:, i], numeric, rtol=1e-4, atol=1e-7), (law, i)


# ---- fits --------------------------------------------------------------------------------------------------
def test_mpl_fit_on_three_schedules_predicts_unseen_ones(tmp_path):
    curves = load_curves(write(curve_table(FIT_SPECS, noise=0.001), tmp_path / "fit.csv"))
    fit = fit_curves(curves, bootstrap=3, seed=1)
    assert fit.law == "mpl" and fit.converged and fit.n_curves == 3
    assert fit.bootstrap_params.shape == (3, 7) and set(fit.ci) == set(fit.params)
    held = load_curves(write(curve_table([("cos4k", 1e8, "cosine", 4000), ("wsd3k", 1e8, "wsd", 3000)]),
                             tmp_path / "held.csv"))
    for curve in held:
        pred = fit.predict(curve.schedule, curve.steps, curve.N)
        assert np.mean(np.abs(pred - curve.loss) / curve.loss) < 3e-3, curve.run
    with pytest.raises(UsageError, match="one model size"):
        fit.predict(held[0].schedule, held[0].steps, 4e8)
    again = type(fit).from_json(json.loads(json.dumps(fit.to_json())))
    assert again.params == fit.params and np.array_equal(again.bootstrap_params, fit.bootstrap_params)


def test_mpl_n_fits_sizes_jointly_and_reduces_to_a_final_point_law(tmp_path):
    specs = [(f"{kind}-{N:g}", N, kind, total) for N in (1e7, 3e7, 1e8)
             for kind, total in (("cosine", 2000), ("step", 1200))]
    curves = load_curves(write(curve_table(specs, law="mpl_n", theta=PLANTED_N), tmp_path / "c.csv"))
    fit = fit_curves(curves)
    assert fit.law == "mpl_n" and fit.sizes == (1e7, 3e7, 1e8)
    rows = schedule_rows("cosine", 3000)
    schedule = Schedule.from_rows(rows["step"].to_numpy(), rows["lr"].to_numpy())
    truth = law_prediction("mpl_n", PLANTED_N, CurveDesign.of(schedule, rows["step"].to_numpy(float), 3e8))[0]
    assert np.max(np.abs(fit.predict(schedule, rows["step"].to_numpy(), 3e8) / truth - 1)) < 0.01
    with pytest.raises(UsageError, match="one model size"):
        fit_curves(curves, law="mpl")
    with pytest.raises(UsageError, match="at least 3 model sizes"):
        fit_curves([c for c in curves if c.N != 1e7], law="mpl_n")
    # fully annealed runs of one shape (WSD to 0 over the last 20 %): the final loss minus the power term in
    # the LR area is the same at every length, so final points follow L0(N) + A(N) S_T^-alpha - const
    finals = []
    for total in (2000, 4000, 8000):
        rows = schedule_rows("wsd", total)
        schedule = Schedule.from_rows(rows["step"].to_numpy(), rows["lr"].to_numpy())
        end = np.array([float(total)])
        loss = law_prediction("mpl_n", PLANTED_N, CurveDesign.of(schedule, end, 1e8))[0][0]
        finals.append(loss - PLANTED_N[3] * schedule.area(end)[0] ** -PLANTED_N[5])
    assert np.ptp(finals) < 0.01 * abs(np.mean(finals))


# ---- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("edit, fragment", [
    (lambda t: t.drop(columns="lr"), "no `lr` column"),
    (lambda t: t.drop(columns="N"), "missing N"),
    (lambda t: pd.concat([t.iloc[:3], t.iloc[[1]], t.iloc[3:]]), "out of order"),
    (lambda t: pd.concat([t.iloc[:3], t.iloc[[2]], t.iloc[3:]]), "repeated"),
    (lambda t: t.assign(loss=t["loss"].astype(object).where(t.index != 5, "nan")), "loss is nan"),
    (lambda t: t[t["step"] <= 100].assign(lr=[1e-4]), "losses only during the warmup"),
    (lambda t: t.assign(loss=np.nan), "has no loss"),
    (lambda t: t.assign(lr=-t["lr"]), "lr must be >= 0"),
])
def test_bad_curve_tables_get_one_error_line(cli, tmp_path, edit, fragment):
    table = curve_table(FIT_SPECS[:1]).reset_index(drop=True)
    path = write(edit(table), tmp_path / "bad.csv")
    assert_usage_error(cli("fit", path, "--curves"), fragment)


def test_diverged_and_failed_runs_are_left_out_with_a_warning(tmp_path):
    table = curve_table(FIT_SPECS)
    table["status"] = np.where(table["run"] == "const2k", "diverged", "completed")
    table["loss"] = table["loss"].astype(object).where(table["run"] != "const2k", "inf")  # a diverged run
    with pytest.warns(UserWarning, match="1 run.*left out.*diverged or failed: const2k"):
        curves = load_curves(write(table, tmp_path / "t.csv"))
    assert [c.run for c in curves] == ["cos2k", "step1k"]


def test_a_folder_without_runs_is_refused(cli, tmp_path):
    assert_usage_error(cli("fit", tmp_path, "--curves"), "no run folders")


def test_loss_left_empty_gives_the_lr_only(tmp_path):
    table = curve_table(FIT_SPECS[:1]).reset_index(drop=True)
    table.loc[3:6, "loss"] = np.nan
    curve = load_curves(write(table, tmp_path / "t.csv"))[0]
    assert len(curve.steps) == len(table) - 4 and len(curve.schedule.steps) == len(table) + 1  # + step 0


@pytest.mark.parametrize("steps, fragment", [([0, 10, 10], "repeated"), ([5, 3, 8], "out of order"),
                                             ([-1, 5, 8], "not a whole number >= 0")])
def test_bad_schedule_files_get_one_error_line(cli, tmp_path, steps, fragment):
    fit_json = tmp_path / "fit.json"
    table = write(curve_table(FIT_SPECS), tmp_path / "c.csv")
    assert cli("fit", table, "--curves", "--json", fit_json).status == 0
    schedule = write(pd.DataFrame({"step": steps, "tokens": np.array(steps) * 10, "lr": [1e-4] * 3}),
                     tmp_path / "s.csv")
    assert_usage_error(cli("predict", fit_json, "--params", "1e8", "--schedule", schedule), fragment)
    with pytest.raises(UsageError, match=fragment):
        read_schedule(schedule)


# ---- the CLI -----------------------------------------------------------------------------------------------
def test_fit_curves_then_predict_a_schedule(cli, tmp_path):
    fit_json, out_json = tmp_path / "fit.json", tmp_path / "pred.json"
    table = write(curve_table(FIT_SPECS, noise=0.001), tmp_path / "c.csv")
    status, out, err = cli("fit", table, "--curves", "--bootstrap", "4", "--json", fit_json)
    assert status == 0, err
    assert "law mpl (learning curves): 3 curves" in out and "95 %" in out
    assert load_curve_fit(fit_json).law == "mpl"
    rows = schedule_rows("cosine", 3000)
    schedule = write(rows.assign(tokens=rows["step"] * 4096)[["step", "tokens", "lr"]], tmp_path / "s.csv")
    status, out, err = cli("predict", fit_json, "--params", "100M", "--schedule", schedule,
                           "--json", out_json)
    assert status == 0, err
    document = json.loads(out_json.read_text())
    assert document["format"] == "scaling.curve_prediction/1" and len(document["curve"]) == len(rows)
    assert set(document["curve"][0]) == {"step", "tokens", "loss"}
    assert document["loss"] == document["curve"][-1]["loss"]
    lo, hi = document["loss_ci"]
    assert lo <= document["loss"] <= hi
    truth = law_prediction("mpl", PLANTED, CurveDesign.of(
        Schedule.from_rows(rows["step"].to_numpy(), rows["lr"].to_numpy()), np.array([3000.0]), 1e8))[0][0]
    assert document["loss"] == pytest.approx(truth, rel=3e-3)
    assert_usage_error(cli("fit", table, "--curves", "--law", "chinchilla"), "fits final points")
    assert_usage_error(cli("fit", table, "--law", "mpl"), "give --curves")
    assert_usage_error(cli("predict", fit_json, "--params", "1e8", "--tokens", "1e9"), "--schedule")
    assert_usage_error(cli("predict", fit_json, "--schedule", schedule), "needs --params")


# ---- the report --------------------------------------------------------------------------------------------
def test_report_draws_the_fitted_law_over_logged_curves_with_their_lr():
    from scaling.report.figures import plot_training_curves
    from scaling.report.pipeline import _fitted_curves
    from scaling.runs.curves import curves_from_metrics

    table = curve_table(FIT_SPECS, noise=0.001)
    metrics = {run: rows.rename(columns={"loss": "val_loss"}).drop(columns=["run", "N"])
               for run, rows in table.groupby("run")}
    runs = pd.DataFrame({"run": list(metrics), "N": 1e8, "C": 1e18})
    assert [c.run for c in curves_from_metrics(metrics, {"cos2k": 1e8})] == ["cos2k"]  # the table's runs
    assert curves_from_metrics({"x": metrics["cos2k"].drop(columns="lr")}, {"x": 1e8}) == []  # no LR logged
    fitted = _fitted_curves(metrics, runs)
    assert set(fitted) == set(metrics)
    logged = metrics["cos2k"].set_index("tokens")["val_loss"]
    drawn = fitted["cos2k"].set_index("tokens")["loss"]
    assert np.max(np.abs(drawn / logged.loc[drawn.index] - 1)) < 0.01
    figure = plot_training_curves(metrics, runs, fitted=fitted)
    assert sum(line.get_linestyle() == "--" for line in figure.axes[0].lines) == len(metrics)
    # the report says how closely the drawn law follows the logged losses
    from scaling.report.document import _curve_law_caption

    worst = max(float((f["loss"] / f["observed"] - 1).abs().max()) for f in fitted.values())
    caption = _curve_law_caption(fitted)
    assert f"fitted on the {len(metrics)} curves" in caption and f"{worst:.2%} at worst" in caption
    with pytest.raises(UsageError, match="with its LR"):
        _fitted_curves({r: m.drop(columns="lr") for r, m in metrics.items()}, runs)


def test_a_dataframe_reads_as_its_csv(tmp_path):
    table = curve_table(FIT_SPECS)
    table.loc[table.index[:3], "loss"] = np.nan  # LR-only rows
    from_csv = load_curves(write(table, tmp_path / "t.csv"))
    from_frame = load_curves(table)
    for a, b in zip(from_csv, from_frame, strict=True):
        assert a.run == b.run and np.array_equal(a.loss, b.loss)
        assert np.array_equal(a.schedule.lrs, b.schedule.lrs)
    with pytest.raises(UsageError, match="no `lr` column"):
        load_curves(table.drop(columns="lr"))


def test_backtest_holds_out_the_largest_runs_and_predicts_their_curves(cli, tmp_path):
    from scaling.fitting.curves import CurveBacktest

    specs = [*FIT_SPECS, ("cos4k", 1e8, "cosine", 4000)]
    out_json = tmp_path / "fit.json"
    table = write(curve_table(specs, noise=0.001), tmp_path / "c.csv")
    status, out, err = cli("fit", table, "--curves", "--holdout-top", "0.25", "--json", out_json)
    assert status == 0, err
    assert "predicting 1 held-out runs" in out
    document = json.loads(out_json.read_text())["backtest"]
    assert document["format"] == "scaling.curve_backtest/1"
    assert [r["run"] for r in document["runs"]] == ["cos4k"]
    assert document["trained_on"] == ["cos2k", "const2k", "step1k"]
    assert document["mean_curve_error"] < 3e-3 and document["mean_final_error"] < 5e-3
    assert CurveBacktest.from_json(document).runs == ("cos4k",)
    assert_usage_error(cli("fit", table, "--curves", "--holdout-top", "1.5"), "between 0 and 1")
