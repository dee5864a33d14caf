"""Figures of a run table and its fit: one function per figure, each returning a matplotlib `Figure`.

Loss against compute (with the frontier and the fitted L(C)), against N per token budget and against D per
model size, the (N, D) plane with loss contours and regimes, the fit's residuals, the learning curves.
The figures of what is derived from the runs (IsoFLOP profiles, allocations, backtest, plan) are in
`scaling.report.study_figures`; the shared style and helpers in `scaling.report.style`. Every function
takes the public results (a run table, a `FitResult`, the regime labels, learning curves), so a user can
restyle or combine them; `scaling.report.document` only composes them.

Conventions: log axes for N (non-embedding parameters), D (tokens) and C (FLOPs); loss in nats/token;
colour by model size N on a log colour bar wherever the runs have different sizes.
A figure the data cannot support raises `scaling.errors.FigureNotSupported` (the report leaves it out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from scaling.errors import FigureNotSupported
from scaling.fitting.laws import get_law
from scaling.reference import (
    GPT3_175B,
    training_flops,
)
from scaling.report.style import (
    LABEL,
    LANDMARKS,
    REGIME_STYLE,
    SIZE_CMAP,
    add_size_colorbar,
    compute_optimal_curve,
    dark_cmap,
    label_iso_lines,
    law_loss_at,
    log_axes,
    log_span,
    new_figure,
    size_norm,
    styled,
)
from scaling.runs.table import compute_frontier, series_groups
from scaling.study.allocation import isoflop_groups
from scaling.study.regimes import OVERFITTING, UNDERFITTING, Thresholds
from scaling.units import count, format_quantity, sci


@styled
def plot_loss_vs_compute(
    table: pd.DataFrame,
    fit_result: Any = None,
    *,
    budget: tuple[float, str] | None = (GPT3_175B.C, f"{GPT3_175B.name} budget"),
    predictions: Sequence[Any] = (),
) -> Figure:
    """Loss of every run against its compute, the compute-efficient frontier, and the fitted
    compute-optimal L(C) with its 95 % bootstrap band, extended to `budget` (C FLOPs, label).

    table: run table (N params, D tokens, C FLOPs, loss nats/token). fit_result: a FitResult of a law in N
    and D (L(C) at the Approach-3 allocation) or in C alone (kaplan_c, saturating_c). predictions:
    `scaling.study.prediction.Prediction`s to mark, with their loss intervals (e.g. GPT-3 175B at 300B
    tokens).
    """
    fig, (ax,) = new_figure(width=7.2, height=4.4)
    norm = size_norm(table["N"])
    ax.scatter(
        table["C"],
        table["loss"],
        c=table["N"],
        cmap=SIZE_CMAP,
        norm=norm,
        s=16,
        alpha=0.85,
        edgecolors="none",
        zorder=3,
    )
    front = compute_frontier(table)
    handles: list = [
        Line2D([], [], ls="", marker="o", ms=4, color=mpl.colormaps[SIZE_CMAP](0.5), label="run (colour: N)"),
    ]
    ax.plot(front["C"], front["loss"], color="0.15", lw=0.9, marker="o", ms=4, mfc="none", mew=0.8, zorder=4)
    handles.append(
        Line2D([], [], color="0.15", lw=0.9, marker="o", mfc="none", label="compute-efficient frontier")
    )
    c_top = max([float(table["C"].max())] + [budget[0]] * bool(budget) + [p.C for p in predictions])
    low = [float(table["loss"].min())]
    title = "Loss against compute"
    if fit_result is not None:
        grid = np.geomspace(float(table["C"].min()) / 2, c_top * 3, 400)
        central, band = compute_optimal_curve(fit_result, grid)
        if central is not None:
            title += ", with the fitted compute-optimal frontier"
            fitted = grid <= float(table["C"].max())
            ax.plot(grid[fitted], central[fitted], color="C3", zorder=5)
            ax.plot(grid[~fitted], central[~fitted], color="C3", ls="--", zorder=5)
            handles.append(
                Line2D([], [], color="C3", label=f"fitted L(C), compute-optimal ({fit_result.law})")
            )
            handles.append(Line2D([], [], color="C3", ls="--", label="L(C) beyond the runs (extrapolated)"))
            low.append(float(np.nanmin(central)))
            if band is not None:
                ax.fill_between(grid, band[0], band[1], color="C3", alpha=0.18, lw=0, zorder=2)
                handles.append(Patch(color="C3", alpha=0.25, label="95 % bootstrap band of L(C)"))
    for prediction, marker in zip(predictions, "*Ds^", strict=False):
        ci = prediction.loss_ci
        yerr = None if ci is None else [[prediction.loss - ci[0]], [ci[1] - prediction.loss]]
        ax.errorbar(
            prediction.C,
            prediction.loss,
            yerr=yerr,
            marker=marker,
            ms=9,
            color="k",
            mfc="gold",
            capsize=3,
            zorder=6,
            ls="",
        )
        low.append(prediction.loss if ci is None else ci[0])
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker=marker,
                ms=8,
                color="k",
                mfc="gold",
                label=(
                    f"predicted: N = {format_quantity(prediction.N)}, "
                    f"D = {format_quantity(prediction.D)} tokens"
                    + (" (95 % interval)" if ci is not None else "")
                ),
            )
        )
    if budget:
        ax.axvline(budget[0], color="0.35", ls=":", lw=1.0, zorder=1)
        handles.append(
            Line2D([], [], color="0.35", ls=":", lw=1.0, label=f"{budget[1]}: {sci(budget[0])} FLOPs")
        )
    log_axes(ax)
    top = float(table["loss"].max())
    bottom = min(low)
    ax.set_ylim(bottom - 0.06 * (top - bottom), top + 0.06 * (top - bottom))
    ax.set_xlabel(LABEL["C"])
    ax.set_ylabel(LABEL["loss"])
    ax.set_title(title)
    add_size_colorbar(fig, ax, norm)
    ax.legend(handles=handles, loc="upper right")
    return fig


def _loss_per_series(table: pd.DataFrame, fit_result: Any, x: str, per: str) -> Figure:
    """Loss against `x` for each group of runs sharing `per`, with the fitted law's curve of each group."""
    groups = series_groups(table, by=per, across=x)
    if not groups:
        raise FigureNotSupported(f"no runs share a value of {per} across two or more values of {x}")
    picks = np.unique(np.linspace(0, len(groups) - 1, min(len(groups), 12)).astype(int))
    shown = [groups[i] for i in picks]
    values = np.array([float(g[per].median()) for g in shown])
    norm = size_norm(values)
    cmap = dark_cmap(SIZE_CMAP if per == "N" else "plasma")
    fig, (ax,) = new_figure(width=6.4, height=4.3)
    for group, value in zip(shown, values, strict=True):
        colour = cmap(norm(value))
        ax.scatter(group[x], group["loss"], color=colour, s=20, zorder=3, edgecolors="none")
        if fit_result is not None:
            grid = log_span(group[x].to_numpy(float))
            args = {x: grid, per: np.full_like(grid, value)}
            ax.plot(grid, law_loss_at(fit_result, args["N"], args["D"]), color=colour, lw=1.1, zorder=2)
    log_axes(ax)
    ax.set_xlabel(LABEL[x])
    ax.set_ylabel(LABEL["loss"])
    what = {"N": "model size N", "D": "token budget D"}
    ax.set_title(
        f"Loss against {what[x]}, one curve per {what[per]}"
        + (f" ({len(shown)} of {len(groups)} shown)" if len(shown) < len(groups) else "")
    )
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02, aspect=30)
    bar.set_label(LABEL[per] + " of the curve")
    handles = [Line2D([], [], ls="", marker="o", color="0.4", label="run")]
    if fit_result is not None:
        handles.append(Line2D([], [], color="0.4", label=f"fitted {fit_result.law} law"))
    ax.legend(handles=handles, loc="upper right")
    return fig


@styled
def plot_loss_vs_params(table: pd.DataFrame, fit_result: Any = None) -> Figure:
    """Loss (nats/token) against N (params) for each token budget D shared by 2+ model sizes, with the
    fitted law at that D. FigureNotSupported when no budget is shared (see `series_groups`)."""
    return _loss_per_series(table, fit_result, x="N", per="D")


@styled
def plot_loss_vs_tokens(table: pd.DataFrame, fit_result: Any = None) -> Figure:
    """Loss (nats/token) against D (tokens) for each model size N trained on 2+ budgets, with the fitted
    law at that N. FigureNotSupported when no size has two budgets."""
    return _loss_per_series(table, fit_result, x="D", per="N")


@styled
def plot_nd_plane(
    fit_result: Any,
    table: pd.DataFrame | None = None,
    regimes: pd.DataFrame | None = None,
    *,
    band: float = Thresholds().band,
    landmarks: Sequence[tuple[float, float, str]] = LANDMARKS,
) -> Figure:
    """The (N, D) plane: contours of the fitted L(N, D) (nats/token), the compute-optimal allocation,
    iso-compute lines (FLOPs), the overfitting / underfitting regions (D more than `band` times below /
    above D_opt(C), as `scaling.study.regimes` labels them), the runs (by regime, when `regimes` gives a
    `regime` per row of `table`) and landmark models."""
    law = get_law(fit_result.law)
    if law.inputs[:2] != ("N", "D"):
        raise FigureNotSupported(f"the {law.name} law is not a law in N and D")
    if fit_result.design is not None and fit_result.design.rank < 2:
        # contours across the plane would be the law where no run constrains it
        raise FigureNotSupported(f"the runs lie on one line ({fit_result.design.words}): the law is not "
                                 "determined across the (N, D) plane")
    points_n = [n for n, _, _ in landmarks] + ([] if table is None else list(table["N"]))
    points_d = [d for _, d, _ in landmarks] + ([] if table is None else list(table["D"]))
    n_lo, n_hi = min(points_n) / 4, max(points_n) * 6
    d_lo, d_hi = min(points_d) / 4, max(points_d) * 6
    NN, DD = np.meshgrid(np.geomspace(n_lo, n_hi, 260), np.geomspace(d_lo, d_hi, 260))
    loss = law_loss_at(fit_result, NN.ravel(), DD.ravel()).reshape(NN.shape)

    fig, (ax,) = new_figure(width=7.0, height=7.0)
    log_axes(ax, x=True, y=True)
    handles: list = []
    optimal = fit_result.compute_optimal
    if optimal is not None:
        ratio = DD / optimal.D_opt(training_flops(NN, DD))
        regions = (
            (0.0, 1.0 / band, OVERFITTING, "data-limited"),
            (band, np.inf, UNDERFITTING, "capacity-limited"),
        )
        for lo, hi, regime, meaning in regions:
            colour = REGIME_STYLE[regime][1]
            ax.contourf(NN, DD, ratio, levels=[lo, hi], colors=[colour], alpha=0.13, zorder=0)
            handles.append(
                Patch(
                    color=colour,
                    alpha=0.3,
                    label=(
                        f"{regime} region ({meaning}: D {'<' if hi < 1 else '>'} D_opt(C) "
                        f"{'/' if hi < 1 else 'x'} {band:.3g})"
                    ),
                )
            )
    top = float(np.percentile(loss, 80)) if table is None else float(table["loss"].max())
    levels = mpl.ticker.MaxNLocator(nbins=9).tick_values(float(loss.min()), top)
    contours = ax.contour(
        NN,
        DD,
        loss,
        levels=levels[(levels > loss.min()) & (levels < loss.max())],
        colors="0.45",
        linewidths=0.7,
        zorder=1,
    )
    obstacles = [(n, d) for n, d, _ in landmarks]
    if table is not None:
        obstacles += list(zip(table["N"], table["D"], strict=True))
    spots = _contour_label_spots(contours, obstacles, landmarks, (n_lo, n_hi), (d_lo, d_hi))
    ax.clabel(contours, fmt=lambda v: f"{v:.3g}", fontsize=6.5, inline=True, manual=spots)
    handles.append(Line2D([], [], color="0.45", lw=0.7, label="fitted L(N, D), nats/token (labelled)"))

    log_c = np.log10(training_flops(NN, DD))
    c_levels = np.arange(math.ceil(log_c.min()), math.floor(log_c.max()) + 1)
    c_levels = c_levels[:: max(1, math.ceil(len(c_levels) / 8))]
    iso = ax.contour(NN, DD, log_c, levels=c_levels, colors="0.25", linewidths=0.6, linestyles=":", zorder=1)
    label_iso_lines(ax, iso.levels, (n_lo, n_hi), (d_lo, d_hi))
    handles.append(
        Line2D(
            [], [], color="0.25", lw=0.6, ls=":", label="iso-compute C = 6ND (labelled in FLOPs at the frame)"
        )
    )
    if optimal is not None:
        line_c = np.geomspace(training_flops(n_lo, d_lo), training_flops(n_hi, d_hi), 300)
        ax.plot(optimal.N_opt(line_c), optimal.D_opt(line_c), color="k", lw=1.8, zorder=3)
        handles.append(
            Line2D(
                [],
                [],
                color="k",
                lw=1.8,
                label=(f"compute-optimal: N_opt ∝ C^{optimal.a:.3g}, D_opt ∝ C^{1 - optimal.a:.3g}"),
            )
        )
    if table is not None:
        labels = None if regimes is None else regimes["regime"].to_numpy()
        if labels is None:
            ax.scatter(table["N"], table["D"], s=14, color="k", zorder=4)
            handles.append(Line2D([], [], ls="", marker="o", ms=4, color="k", label="run"))
        else:
            for regime in sorted(set(labels)):
                marker, colour = REGIME_STYLE.get(regime, ("s", "0.5"))
                mask = labels == regime
                ax.scatter(
                    table["N"][mask],
                    table["D"][mask],
                    marker=marker,
                    s=22,
                    color=colour,
                    edgecolors="k",
                    linewidths=0.3,
                    zorder=4,
                )
                handles.append(
                    Line2D(
                        [],
                        [],
                        ls="",
                        marker=marker,
                        ms=5,
                        color=colour,
                        mec="k",
                        mew=0.3,
                        label=f"run labelled {regime} ({int(mask.sum())})",
                    )
                )
    for i, (n, d, text) in enumerate(landmarks):
        ax.scatter([n], [d], marker="*", s=140, color="gold", edgecolors="k", linewidths=0.7, zorder=5)
        right = i % 2 == 0
        ax.annotate(
            text,
            (n, d),
            xytext=(9 if right else -9, -2 if right else 2),
            textcoords="offset points",
            ha="left" if right else "right",
            va="top" if right else "bottom",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
            zorder=6,
        )
    handles.append(Line2D([], [], ls="", marker="*", ms=10, color="gold", mec="k", label="published models"))
    ax.set_xlim(n_lo, n_hi)
    ax.set_ylim(d_lo, d_hi)
    ax.set_xlabel(LABEL["N"])
    ax.set_ylabel(LABEL["D"])
    ax.set_title(f"The (N, D) plane under the fitted {fit_result.law} law", pad=14)
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    return fig


def _contour_label_spots(contours, points, landmarks, n_range, d_range) -> list[tuple[float, float]]:
    """One label position per contour level: the point of the line farthest (in axes fractions of the
    log axes) from the runs, the landmarks with their text, the frame and the labels placed before it."""
    (n_lo, n_hi), (d_lo, d_hi) = n_range, d_range

    def frac(n, d):
        return np.column_stack(
            [
                np.log(np.asarray(n) / n_lo) / np.log(n_hi / n_lo),
                np.log(np.asarray(d) / d_lo) / np.log(d_hi / d_lo),
            ]
        )

    obstacles = [frac(*zip(*points, strict=True))] if points else []
    for i, (n, d, _) in enumerate(landmarks):  # each landmark's text runs ~0.15 of the width to its side
        side = 1 if i % 2 == 0 else -1
        obstacles.append(frac(n, d) + np.column_stack([side * np.linspace(0, 0.15, 6), np.zeros(6)]))
    spots = []
    for segments in contours.allsegs:
        line = np.concatenate([seg for seg in segments if len(seg)] or [np.empty((0, 2))])
        if not len(line):
            continue
        where = frac(line[:, 0], line[:, 1])
        clear = np.min(np.minimum(where, 1 - where), axis=1)  # distance to the frame
        for block in obstacles:
            gaps = np.linalg.norm(where[:, None, :] - block[None, :, :], axis=2).min(axis=1)
            clear = np.minimum(clear, gaps)
        best = int(np.argmax(clear))
        spots.append((float(line[best, 0]), float(line[best, 1])))
        obstacles.append(where[best : best + 1])
    return spots


@styled
def plot_residuals(table: pd.DataFrame, fit_result: Any) -> Figure:
    """Residuals log(observed / fitted loss) of every run against C (FLOPs) and against tokens per
    parameter D/N, coloured by N."""
    unique = table["U"].to_numpy(float) if "U" in table else None
    fitted = law_loss_at(fit_result, table["N"].to_numpy(float), table["D"].to_numpy(float), unique)
    resid = np.log(table["loss"].to_numpy(float)) - np.log(fitted)
    rms = float(np.sqrt(np.mean(resid**2)))
    fig, axes = new_figure(ncols=2, width=8.6, height=3.8)
    norm = size_norm(table["N"])
    for ax, x, label in (
        (axes[0], table["C"], LABEL["C"]),
        (axes[1], table["D"] / table["N"], "tokens per parameter D/N (tokens/param)"),
    ):
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.axhspan(-rms, rms, color="0.5", alpha=0.12, lw=0)
        ax.scatter(x, resid, c=table["N"], cmap=SIZE_CMAP, norm=norm, s=16, edgecolors="none", zorder=3)
        log_axes(ax)
        ax.set_xlabel(label)
    axes[0].set_ylabel("log(observed / fitted loss) (dimensionless)")
    axes[1].sharey(axes[0])
    axes[1].tick_params(labelleft=False)
    fig.suptitle(
        f"Residuals of the {fit_result.law} fit, {len(table)} runs; RMS {rms:.3g} (shaded: ±1 RMS)",
        fontsize=10,
    )
    add_size_colorbar(fig, axes, norm)
    return fig


MAX_SIZE_LEGEND = 12  # model sizes named one by one in a legend; more get a colour bar


def _budget_facets(table: pd.DataFrame, runs: Sequence[str]) -> list[list[str]]:
    """The runs split by IsoFLOP budget (compute within 1 %), one facet each, when every run shares its
    budget with another and there are 2 to 6 budgets; otherwise one facet of all runs."""
    rows = table[table["run"].astype(str).isin(runs)]
    groups = isoflop_groups(rows)
    if 2 <= len(groups) <= 6 and all(len(g) >= 2 for g in groups):
        return [list(rows["run"].astype(str).iloc[g]) for g in groups]
    return [list(runs)]


@styled
def plot_training_curves(
    curves: Mapping[str, pd.DataFrame],
    table: pd.DataFrame,
    regimes: pd.DataFrame | None = None,
    fitted: Mapping[str, pd.DataFrame] | None = None,
) -> Figure:
    """Held-out loss (nats/token) against tokens for every run, one colour per model size N (named in a
    legend), one panel per IsoFLOP budget when the runs form such budgets, with the overfitting onset
    (where `regimes` gives `onset_tokens`) marked, and dashed the learning-curve law's fit of each run
    where `fitted` (run -> columns tokens, loss; `scaling.fitting.curves`) has one.

    curves: run folder -> its metrics (columns tokens, val_loss), e.g. from `scaling.runs.table.read_metrics`.
    table: run table with columns run, N (and C for the panels). regimes: `scaling.study.regimes.classify`
    output for `table`.
    """
    sizes = dict(zip(table["run"].astype(str), table["N"].astype(float), strict=True))
    onsets: dict[str, float] = {}
    if regimes is not None and "onset_tokens" in regimes:
        onsets = {
            str(r): float(t)
            for r, t in zip(regimes["run"], regimes["onset_tokens"], strict=True)
            if pd.notna(t)
        }
    runs = [run for run in curves if run in sizes and len(curves[run])]
    if not runs:
        raise FigureNotSupported("no learning curves for the runs of the table")
    facets = _budget_facets(table, runs) if "C" in table else [runs]
    distinct = sorted({sizes[r] for r in runs})
    norm = size_norm(distinct)
    cmap = dark_cmap(SIZE_CMAP)
    fig, axes = new_figure(ncols=len(facets), width=min(13.0, 3.6 + 3.0 * len(facets)), height=4.3)
    for ax in axes[1:]:
        ax.sharey(axes[0])
        ax.tick_params(labelleft=False)
    marked, lows, tops = 0, [], []
    for ax, facet in zip(axes, facets, strict=True):
        for run in sorted(facet, key=sizes.get):
            curve = curves[run]
            curve = curve[(curve["tokens"] > 0) & np.isfinite(curve["val_loss"])].sort_values("tokens")
            colour = cmap(norm(sizes[run]))
            ax.plot(curve["tokens"], curve["val_loss"], color=colour, lw=1.2, alpha=0.95)
            if fitted and run in fitted:
                ax.plot(fitted[run]["tokens"], fitted[run]["loss"], color=colour, lw=1.0, ls="--", alpha=0.9)
            if len(curve):
                lows.append(float(curve["val_loss"].min()))
                tops.append(float(curve["val_loss"].iloc[min(1, len(curve) - 1)]))
            if run in onsets and len(curve):
                at = float(np.interp(onsets[run], curve["tokens"], curve["val_loss"]))
                ax.plot(onsets[run], at, marker="X", ms=8, color=REGIME_STYLE[OVERFITTING][1], mec="white",
                        mew=0.6, zorder=5, ls="")  # fmt: skip
                marked += 1
        log_axes(ax)
        ax.set_xlabel("tokens seen (tokens)")
        if len(facets) > 1:
            budget = float(np.median(table.loc[table["run"].astype(str).isin(facet), "C"]))
            ax.set_title(f"C = {sci(budget)} FLOPs ({count(len(facet), 'run')})")
    axes[0].set_ylabel("held-out " + LABEL["loss"])
    # From the second evaluation down: the first, far above, would flatten where the runs differ.
    low, top = min(lows), max(tops)
    axes[0].set_ylim(low - 0.05 * (top - low), top + 0.05 * (top - low))
    onset_label = f"overfitting onset ({marked} run{'s' * (marked != 1)})"
    handles = [Line2D([], [], ls="", marker="X", ms=7, color=REGIME_STYLE[OVERFITTING][1], label=onset_label)]
    if fitted:
        handles.append(Line2D([], [], color="0.3", lw=1.0, ls="--", label="learning-curve law (fit)"))
    if len(distinct) <= MAX_SIZE_LEGEND:
        handles = [
            Line2D([], [], color=cmap(norm(n)), lw=1.6, label=f"N = {format_quantity(n)}") for n in distinct
        ] + handles
        fig.legend(handles=handles, loc="outside right center", title="model size N (params)")
    else:
        axes[-1].legend(handles=handles, loc="upper right")
        add_size_colorbar(fig, axes, norm)
    fig.suptitle(
        f"Learning curves of {count(len(runs), 'run')}"
        + (", one panel per IsoFLOP budget" if len(facets) > 1 else ""),
        fontsize=10,
    )
    return fig
