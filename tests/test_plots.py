"""Every figure of scaling.report (figures, study_figures) on small run tables from a known Chinchilla law:
it draws, its axes are logarithmic with units in the labels, it shows what it claims (curves, bands,
markers), no two texts overlap, and the PNG has the resolution asked for."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import TRUE, law_table
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from test_allocate import shifting_profiles

from scaling.errors import FigureNotSupported, ScalingWarning
from scaling.fitting.backtest import backtest
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.reference import GPT3_175B
from scaling.report import figures as plots
from scaling.report import study_figures, style
from scaling.study.allocation import allocate
from scaling.study.regimes import classify


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return law_table()


@pytest.fixture(scope="module")
def result(table):
    return fit(table, bootstrap=60, seed=0)


@pytest.fixture(scope="module")
def allocations(table, result):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScalingWarning)
        return [
            allocate(table, 1, bootstrap=30),
            allocate(table, 2, bootstrap=30),
            allocate(table, 3, fit_result=result),
        ]


def drawn_texts(fig: Figure) -> list[Text]:
    """The non-empty texts a render of `fig` shows (tick labels only for ticks inside the view)."""
    FigureCanvasAgg(fig).draw()
    tick_labels, shown = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in itertools.chain(axis.get_major_ticks(), axis.get_minor_ticks()):
                tick_labels.add(id(tick.label1))
                tick_labels.add(id(tick.label2))
                if lo * (1 - 1e-9) <= tick.get_loc() <= hi * (1 + 1e-9) and tick.label1.get_visible():
                    shown.append(tick.label1)
    shown += [t for t in fig.findobj(Text) if id(t) not in tick_labels and t.get_visible()]
    return [t for t in shown if t.get_text().strip()]


def assert_no_overlapping_text(fig: Figure) -> None:
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1, 1).padded(-1)) for t in texts]
    clashes = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert not clashes, f"overlapping texts: {clashes[:5]}"


def check_axes(fig: Figure, xlabel_unit: str, log_x: bool = True) -> None:
    ax = fig.axes[0]
    assert xlabel_unit in ax.get_xlabel()
    assert "(" in ax.get_ylabel() and ")" in ax.get_ylabel()  # every axis label says its unit
    assert (ax.get_xscale() == "log") == log_x


def test_loss_vs_compute_draws_frontier_law_band_and_prediction(table, result):
    from scaling.study.prediction import predict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScalingWarning)
        target = predict(result, N="175B", D="300B")
    fig = plots.plot_loss_vs_compute(table, result, predictions=[target])
    check_axes(fig, "(FLOPs)")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("frontier" in s for s in labels) and any("95 % bootstrap band" in s for s in labels)
    # the fitted L(C) reaches the GPT-3 175B budget and the prediction is drawn there
    assert ax.get_xlim()[1] > GPT3_175B.C
    assert fig.axes[1].get_ylabel() == style.LABEL["N"]  # colour bar of model size
    assert_no_overlapping_text(fig)


def test_optimal_loss_is_the_minimum_over_allocations_of_the_same_compute():
    C = np.array([1e18, 1e21, 3.15e23])
    best = style.optimal_loss("chinchilla", TRUE, C)
    for c, value in zip(C, best, strict=True):
        N = np.geomspace(1e5, 1e14, 200_001)
        brute = get_law("chinchilla").predict(TRUE, N=N, D=c / (6 * N)).min()
        assert value == pytest.approx(brute, rel=1e-9)


def test_isoflop_profiles_one_parabola_and_minimum_per_budget(allocations):
    alloc = allocations[1]
    fig = study_figures.plot_isoflop_profiles(alloc)
    check_axes(fig, style.LABEL["N"])
    ax = fig.axes[0]
    minima = [line for line in ax.get_lines() if line.get_marker() == "D"]
    assert len(alloc.profiles) >= 3 and len(minima) == len(alloc.profiles)
    for line, profile in zip(minima, sorted(alloc.profiles, key=lambda p: p.C), strict=True):
        assert line.get_xdata()[0] == pytest.approx(profile.N_opt)
    assert_no_overlapping_text(fig)


def test_isoflop_profiles_mark_the_points_each_local_fit_used():
    table = shifting_profiles()
    small = table["C"] == table["C"].min()
    table = table[~small | (table["N"] > table.loc[small, "N"].min() * 1.5)]  # 1e18: minimum at an edge
    with pytest.warns(ScalingWarning, match="left out"):
        alloc = allocate(table, 2)
    fig = study_figures.plot_isoflop_profiles(alloc)
    ax = fig.axes[0]
    filled = sum(len(c.get_offsets()) for c in ax.collections if c.get_facecolors()[:, :3].min() < 1)
    hollow = sum(len(c.get_offsets()) for c in ax.collections if c.get_facecolors()[:, :3].min() == 1)
    kept = [p for p in sorted(alloc.profiles, key=lambda p: p.C) if not p.left_out]
    assert len(kept) == 5 and filled == 5 * 5 and hollow == len(table) - 25
    fits = [
        line for line in ax.get_lines() if line.get_marker() in ("None", "") and len(line.get_xdata()) > 2
    ]
    assert len(fits) == 5
    for line, profile in zip(fits, kept, strict=True):  # each local fit drawn over its window only
        used = profile.N[profile.used]
        assert line.get_xdata().min() == pytest.approx(
            used.min()
        ) and line.get_xdata().max() == pytest.approx(used.max())
    assert "5 of 6 budgets" in ax.get_title()
    assert any("left out" in t.get_text() for t in ax.get_legend().get_texts())
    assert_no_overlapping_text(fig)


@pytest.mark.parametrize("func,x,per", [("plot_loss_vs_params", "N", "D"), ("plot_loss_vs_tokens", "D", "N")])
def test_loss_per_series_one_law_curve_per_group(table, result, func, x, per):
    fig = getattr(plots, func)(table, result)
    check_axes(fig, style.LABEL[x])
    curves = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 10]
    assert len(curves) == table[per].nunique()
    # each curve is the fitted law at its group's value
    line = curves[0]
    value = sorted(table[per].unique())[0]
    args = {x: line.get_xdata(), per: np.full(len(line.get_xdata()), value)}
    np.testing.assert_allclose(line.get_ydata(), result.predict(N=args["N"], D=args["D"]), rtol=1e-12)
    assert_no_overlapping_text(fig)


def test_loss_per_series_says_when_the_data_has_no_series(table, result):
    lone = table.assign(D=table["D"] * np.linspace(1, 1.5, len(table)))  # no two runs share a D
    with pytest.raises(FigureNotSupported, match="share"):
        plots.plot_loss_vs_params(lone, result)


def test_every_figure_the_data_cannot_support_raises_figure_not_supported(table):
    kaplan = FitResult("kaplan_n", {"N_c": 8.8e13, "alpha_N": 0.076}, 0.0, 10, True)
    with pytest.raises(FigureNotSupported, match="not a law in N and D"):
        plots.plot_nd_plane(kaplan, table)
    with pytest.raises(FigureNotSupported, match="no learning curves"):
        plots.plot_training_curves({}, table)
    with pytest.raises(FigureNotSupported, match="no allocations"):
        study_figures.plot_allocation([])
    with pytest.raises(FigureNotSupported, match="no IsoFLOP profiles"):
        study_figures.plot_isoflop_profiles(allocate(table, approach=3))


def test_nd_plane_regions_lines_runs_and_landmarks(table, result):
    labels = classify(table, result, curves=False).labels
    fig = plots.plot_nd_plane(result, table, labels)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert style.LABEL["N"] == ax.get_xlabel() and style.LABEL["D"] == ax.get_ylabel()
    texts = [t.get_text() for t in ax.texts]
    assert any("GPT-3 175B" in t for t in texts) and any("Chinchilla 70B" in t for t in texts)
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    for word in ("overfitting region", "underfitting region", "compute-optimal", "iso-compute"):
        assert word in legend
    for regime, count in labels["regime"].value_counts().items():
        assert f"run labelled {regime} ({count})" in legend
    # the compute-optimal line is D_opt(C) against N_opt(C) of the fit
    thick = max(ax.get_lines(), key=lambda line: line.get_linewidth())
    n, d = thick.get_xdata(), thick.get_ydata()
    co = result.compute_optimal
    np.testing.assert_allclose(n, co.G * (6 * n * d / 6) ** co.a, rtol=1e-9)
    assert_no_overlapping_text(fig)


def test_allocation_one_line_per_approach_in_both_panels(allocations):
    fig = study_figures.plot_allocation(allocations)
    n_ax, d_ax = fig.axes[:2]
    for ax in (n_ax, d_ax):
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert "(FLOPs)" in ax.get_xlabel()
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    for alloc in allocations:
        assert f"a = {alloc.a:.3f}" in legend
    line = n_ax.get_lines()[0]  # Approach 1's N_opt(C)
    np.testing.assert_allclose(line.get_ydata(), allocations[0].N_opt(line.get_xdata()))
    assert_no_overlapping_text(fig)


def test_residuals_are_log_observed_over_fitted(table, result):
    fig = plots.plot_residuals(table, result)
    points = fig.axes[0].collections[-1].get_offsets()
    expected = np.log(table["loss"] / result.predict(N=table["N"], D=table["D"]))
    np.testing.assert_allclose(np.asarray(points)[:, 1], expected, rtol=1e-9)
    assert "RMS" in fig.get_suptitle()
    assert_no_overlapping_text(fig)


def test_backtest_shows_heldout_runs_and_their_error(table):
    bt = backtest(table, holdout_top=0.25)
    fig = study_figures.plot_backtest(bt, table)
    assert f"{bt.mean_abs_rel_error:.2%}" in fig.get_suptitle()
    held = fig.axes[0].collections[-1].get_offsets()
    np.testing.assert_allclose(np.asarray(held), bt.runs[["loss", "predicted"]].to_numpy())
    assert_no_overlapping_text(fig)


def test_training_curves_mark_the_overfitting_onsets(table):
    curves = {}
    for run, n, d in zip(table["run"], table["N"], table["D"], strict=True):
        tokens = np.geomspace(d / 100, d, 12)
        curves[run] = pd.DataFrame(
            {"tokens": tokens, "val_loss": get_law("chinchilla").predict(TRUE, N=n, D=tokens)}
        )
    regimes = pd.DataFrame({"run": table["run"], "onset_tokens": np.nan})
    regimes.loc[[0, 3], "onset_tokens"] = table["D"].iloc[[0, 3]].to_numpy() / 10
    fig = plots.plot_training_curves(curves, table, regimes)
    ax = fig.axes[0]
    onsets = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert len(onsets) == 2
    assert sorted(line.get_xdata()[0] for line in onsets) == sorted(regimes["onset_tokens"].dropna())
    assert len([line for line in ax.get_lines() if line.get_marker() in ("None", "")]) == len(table)
    check_axes(fig, "(tokens)")
    assert_no_overlapping_text(fig)


def test_saved_png_has_the_resolution_asked_for_and_a_pdf(tmp_path, table, result):
    from matplotlib.image import imread

    fig = plots.plot_residuals(table, result)
    png, pdf = style.save_figure(fig, str(tmp_path / "residuals"), dpi=160)
    height, width = imread(png).shape[:2]
    assert (width, height) == pytest.approx(tuple(fig.get_size_inches() * 160), abs=2)
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"
