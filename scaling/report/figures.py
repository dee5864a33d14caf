"""Figures of a scaling study: one function per figure, each returning a matplotlib `Figure`.

Every function takes the public results (a run table, a `FitResult`, an `Allocation`, a `Backtest`, the
regime labels, learning curves) and draws with the shared style (`STYLE`, applied by `styled`), so a user
can restyle or combine them; `scaling.report.document` only composes them. Figures are built on
`matplotlib.figure.Figure` directly, never through pyplot, so no GUI backend is touched (saving uses Agg).

Conventions: log axes for N (non-embedding parameters), D (tokens) and C (FLOPs); loss in nats/token;
colour by model size N on a log colour bar wherever the runs have different sizes.
A figure the data cannot support raises `scaling.errors.FigureNotSupported` (the report leaves it out).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from scaling.errors import FigureNotSupported
from scaling.fitting.intervals import percentile_interval
from scaling.fitting.laws import get_law
from scaling.fitting.optimal import ComputeOptimal
from scaling.reference import (
    GPT3_175B,
    REFERENCE_MODELS,
    params_for_compute,
    tokens_for_compute,
    training_flops,
)
from scaling.runs.table import compute_frontier, series_groups
from scaling.study.allocation import isoflop_groups
from scaling.study.regimes import BALANCED, OVERFITTING, UNDERFITTING, Thresholds
from scaling.units import format_quantity, sci

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "0.85",
    "lines.linewidth": 1.4,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,  # embed TrueType, so the PDF's text stays text
}
SIZE_CMAP = "viridis"
REGIME_STYLE = {  # marker, colour
    OVERFITTING: ("^", "#c0392b"),
    UNDERFITTING: ("v", "#2471a3"),
    BALANCED: ("o", "#1e8449"),
}
LABEL = {
    "N": "model size N (non-embedding parameters)",
    "D": "data D (training tokens)",
    "C": "training compute C = 6ND (FLOPs)",
    "loss": "loss (nats/token)",
}
# Points of reference in the (N, D) plane: (N params, D tokens, label).
LANDMARKS: tuple[tuple[float, float, str], ...] = tuple(
    (m.N, m.D, f"{m.name}\n{format_quantity(m.D)} tokens") for m in REFERENCE_MODELS
)


def styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw `func`'s figure under STYLE (rc parameters are read when artists are made)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> Figure:
        with mpl.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.2) -> tuple[Figure, list[Axes]]:
    """A figure with `ncols` panels side by side, laid out so that labels never overlap."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save_figure(fig: Figure, stem: str, dpi: int = 200) -> list[str]:
    """Write `stem`.png (at `dpi`) and `stem`.pdf; returns the two paths."""
    paths = [f"{stem}.png", f"{stem}.pdf"]
    with mpl.rc_context(STYLE):
        for path in paths:
            fig.savefig(path, dpi=dpi)
    return paths


# ---- helpers ---------------------------------------------------------------------------------------
def size_norm(N: Sequence[float] | np.ndarray) -> LogNorm:
    """Log colour scale over the model sizes N (params); a single size gets a decade around it."""
    N = np.asarray(N, dtype=float)
    lo, hi = float(N.min()), float(N.max())
    if hi <= lo * 1.0001:
        lo, hi = lo / math.sqrt(10), hi * math.sqrt(10)
    return LogNorm(vmin=lo, vmax=hi)


def add_size_colorbar(fig: Figure, axes: Axes | Sequence[Axes], norm: LogNorm, label: str | None = None):
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=SIZE_CMAP), ax=axes, pad=0.02, aspect=30)
    bar.set_label(label or LABEL["N"])
    return bar


def _log_axes(ax: Axes, x: bool = True, y: bool = False) -> None:
    if x:
        ax.set_xscale("log")
    if y:
        ax.set_yscale("log")


def _span(values: np.ndarray, pad: float = 1.5) -> np.ndarray:
    """A log-spaced grid from min/pad to max*pad."""
    return np.geomspace(float(np.min(values)) / pad, float(np.max(values)) * pad, 200)


def _bootstrap_band(samples: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The 95 % percentile band over the first axis of (K, n) samples, ignoring non-finite ones."""
    if samples is None or len(samples) < 2:
        return None
    lo, hi = percentile_interval(samples)
    return lo, hi


def _param_sets(fit_result: Any) -> list[dict[str, float]]:
    law = get_law(fit_result.law)
    if fit_result.bootstrap_params is None:
        return []
    return [dict(zip(law.param_names, row, strict=True)) for row in fit_result.bootstrap_params]


def optimal_loss(law_name: str, params: Mapping[str, float], C: np.ndarray) -> np.ndarray | None:
    """L(C) in nats/token: the law's loss at the compute-optimal allocation of C FLOPs (Approach 3),
    or the law itself for kaplan_c; None for laws that cannot say (kaplan_n, kaplan_d)."""
    law = get_law(law_name)
    if law.name == "kaplan_c":
        return law.predict(params, C=C)
    optimal = law.compute_optimal(params)
    if optimal is None:
        return None
    n_opt, d_opt = optimal.N_opt(C), optimal.D_opt(C)
    unique = d_opt if "U" in law.inputs else None  # fresh data: no repeats at the optimum
    return law.predict(params, N=n_opt, D=d_opt, U=unique)


def compute_optimal_curve(
    fit_result: Any, C: np.ndarray
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """(central L(C), 95 % band (lo, hi) or None) of the fitted compute-optimal loss, nats/token."""
    central = optimal_loss(fit_result.law, fit_result.params, C)
    if central is None:
        return None, None
    samples = [optimal_loss(fit_result.law, p, C) for p in _param_sets(fit_result)]
    band = _bootstrap_band(np.array(samples)) if samples else None
    return central, band


def law_loss_at(fit_result: Any, N, D, U=None) -> np.ndarray:
    """The fitted loss (nats/token) at N params, D tokens; U unique tokens (default D: no repeats) only
    where the law reads it."""
    if "U" not in get_law(fit_result.law).inputs:
        return fit_result.predict(N=N, D=D)
    return fit_result.predict(N=N, D=D, U=D if U is None else U)


def _truncated(name: str, top: float = 0.88) -> mpl.colors.Colormap:
    """A sequential colour map without its palest end, so every colour shows on white."""
    base = mpl.colormaps[name]
    return mpl.colors.ListedColormap(base(np.linspace(0.0, top, 256)), name=f"{name}_dark")


# ---- the figures -----------------------------------------------------------------------------------
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
    and D (L(C) at the Approach-3 allocation) or of kaplan_c. predictions:
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
    if fit_result is not None:
        grid = np.geomspace(float(table["C"].min()) / 2, c_top * 3, 400)
        central, band = compute_optimal_curve(fit_result, grid)
        if central is not None:
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
    _log_axes(ax)
    top = float(table["loss"].max())
    bottom = min(low)
    ax.set_ylim(bottom - 0.06 * (top - bottom), top + 0.06 * (top - bottom))
    ax.set_xlabel(LABEL["C"])
    ax.set_ylabel(LABEL["loss"])
    ax.set_title("Loss against compute, with the fitted compute-optimal frontier")
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
    cmap = _truncated(SIZE_CMAP if per == "N" else "plasma")
    fig, (ax,) = new_figure(width=6.4, height=4.3)
    for group, value in zip(shown, values, strict=True):
        colour = cmap(norm(value))
        ax.scatter(group[x], group["loss"], color=colour, s=20, zorder=3, edgecolors="none")
        if fit_result is not None:
            grid = _span(group[x].to_numpy(float))
            args = {x: grid, per: np.full_like(grid, value)}
            ax.plot(grid, law_loss_at(fit_result, args["N"], args["D"]), color=colour, lw=1.1, zorder=2)
    _log_axes(ax)
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
    points_n = [n for n, _, _ in landmarks] + ([] if table is None else list(table["N"]))
    points_d = [d for _, d, _ in landmarks] + ([] if table is None else list(table["D"]))
    n_lo, n_hi = min(points_n) / 4, max(points_n) * 6
    d_lo, d_hi = min(points_d) / 4, max(points_d) * 6
    NN, DD = np.meshgrid(np.geomspace(n_lo, n_hi, 260), np.geomspace(d_lo, d_hi, 260))
    loss = law_loss_at(fit_result, NN.ravel(), DD.ravel()).reshape(NN.shape)

    fig, (ax,) = new_figure(width=7.0, height=7.0)
    _log_axes(ax, x=True, y=True)
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
    _label_iso_lines(ax, iso.levels, (n_lo, n_hi), (d_lo, d_hi))
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


def _label_iso_lines(ax: Axes, levels: np.ndarray, n_range, d_range) -> None:
    """Label each iso-compute line (log10 C in `levels`) where its upper end leaves the frame: above the
    top edge, or just inside the left edge (the frame keeps runs 4x away from it), so that no label can
    cover a run, a landmark or another label."""
    (n_lo, n_hi), (d_lo, d_hi) = n_range, d_range
    label = {"textcoords": "offset points", "fontsize": 6.5, "color": "0.25"}
    for level in levels:
        C = 10.0**level
        text = f"1e{level:.0f}"
        n_top = params_for_compute(C, d_hi)
        if n_lo <= n_top <= n_hi:
            ax.annotate(
                text, (n_top, d_hi), xytext=(0, 2), ha="center", va="bottom", annotation_clip=False, **label
            )
            continue
        d_left = tokens_for_compute(C, n_lo)
        if d_lo * 1.5 <= d_left <= d_hi:
            ax.annotate(
                text,
                (n_lo, d_left),
                xytext=(2, 0),
                ha="left",
                va="center",
                zorder=2,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
                **label,
            )


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
        _log_axes(ax)
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
) -> Figure:
    """Held-out loss (nats/token) against tokens for every run, one colour per model size N (named in a
    legend), one panel per IsoFLOP budget when the runs form such budgets, with the overfitting onset
    (where `regimes` gives `onset_tokens`) marked.

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
    cmap = _truncated(SIZE_CMAP)
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
            if len(curve):
                lows.append(float(curve["val_loss"].min()))
                tops.append(float(curve["val_loss"].iloc[min(1, len(curve) - 1)]))
            if run in onsets and len(curve):
                at = float(np.interp(onsets[run], curve["tokens"], curve["val_loss"]))
                ax.plot(onsets[run], at, marker="X", ms=8, color=REGIME_STYLE[OVERFITTING][1], mec="white",
                        mew=0.6, zorder=5, ls="")  # fmt: skip
                marked += 1
        _log_axes(ax)
        ax.set_xlabel("tokens seen (tokens)")
        if len(facets) > 1:
            budget = float(np.median(table.loc[table["run"].astype(str).isin(facet), "C"]))
            ax.set_title(f"C = {sci(budget)} FLOPs ({len(facet)} runs)")
    axes[0].set_ylabel("held-out " + LABEL["loss"])
    # From the second evaluation down: the first, far above, would flatten where the runs differ.
    low, top = min(lows), max(tops)
    axes[0].set_ylim(low - 0.05 * (top - low), top + 0.05 * (top - low))
    onset_label = f"overfitting onset ({marked} run{'s' * (marked != 1)})"
    handles = [Line2D([], [], ls="", marker="X", ms=7, color=REGIME_STYLE[OVERFITTING][1], label=onset_label)]
    if len(distinct) <= MAX_SIZE_LEGEND:
        handles = [
            Line2D([], [], color=cmap(norm(n)), lw=1.6, label=f"N = {format_quantity(n)}") for n in distinct
        ] + handles
        fig.legend(handles=handles, loc="outside right center", title="model size N (params)")
    else:
        axes[-1].legend(handles=handles, loc="upper right")
        add_size_colorbar(fig, axes, norm)
    fig.suptitle(
        f"Learning curves of {len(runs)} runs"
        + (", one panel per IsoFLOP budget" if len(facets) > 1 else ""),
        fontsize=10,
    )
    return fig


@styled
def plot_isoflop_profiles(allocation: Any) -> Figure:
    """Approach 2's IsoFLOP profiles: loss (nats/token) against N (params) for each compute budget, the
    fit of each profile drawn over the sizes it used (filled points; hollow: runs it left aside) and its
    minimum N_opt(C). A budget left out (lowest loss at the edge of the sizes tried) has hollow points
    and no fit.

    allocation: `scaling.study.allocation.Allocation` of approach 2 (its `profiles`)."""
    profiles = sorted(allocation.profiles, key=lambda p: p.C)
    if not profiles:
        raise FigureNotSupported("the allocation has no IsoFLOP profiles (Approach 2 only)")
    norm = size_norm([p.C for p in profiles])
    cmap = _truncated("plasma")
    fig, (ax,) = new_figure(width=6.6, height=4.4)
    for profile in profiles:
        colour = cmap(norm(profile.C))
        used = profile.used & (not profile.left_out)
        ax.scatter(profile.N[used], profile.loss[used], color=colour, s=18, edgecolors="none", zorder=3)
        ax.scatter(
            profile.N[~used],
            profile.loss[~used],
            facecolors="white",
            edgecolors=colour,
            s=18,
            lw=0.9,
            zorder=3,
        )
        if profile.left_out:
            continue
        span = profile.N[profile.used]
        grid = np.geomspace(span.min(), span.max(), 100)
        ax.plot(grid, profile.curve(grid), color=colour, lw=1.1, zorder=2)
        ax.plot(
            profile.N_opt, profile.loss_opt, marker="D", ms=6, color=colour, mec="k", mew=0.7, zorder=4, ls=""
        )
    _log_axes(ax)
    ax.set_xlabel(LABEL["N"])
    ax.set_ylabel(LABEL["loss"])
    method = profiles[0].method
    fit_name = {
        "window": f"local parabolas ({profiles[0].window} sizes)",
        "akima": "Akima interpolants",
        "parabola": "whole-profile parabolas",
    }[method]
    kept = sum(not p.left_out for p in profiles)
    ax.set_title(f"IsoFLOP profiles: {kept} of {len(profiles)} budgets, {fit_name} in log N")
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02, aspect=30)
    bar.set_label("compute budget C of the profile (FLOPs)")
    handles = [
        Line2D([], [], ls="", marker="o", color="0.4", label="run used by its profile's fit"),
        Line2D([], [], color="0.4", label="fit, over the sizes it used"),
        Line2D([], [], ls="", marker="D", color="0.4", mec="k", label="minimum: N_opt(C)"),
    ]
    if any(not p.used.all() or p.left_out for p in profiles):
        handles.insert(
            1,
            Line2D([], [], ls="", marker="o", mfc="white", mec="0.4", color="0.4", label="run not used"),
        )
    if any(p.left_out for p in profiles):
        handles.append(Line2D([], [], ls="", label="hollow profile, no fit: left out (minimum at the edge)"))
    ax.legend(handles=handles, loc="best")  # big models at small budgets can lie anywhere above
    return fig


APPROACH_NAME = {1: "Approach 1: envelope", 2: "Approach 2: IsoFLOP", 3: "Approach 3: parametric fit"}
# Compute-optimal reference models: (C FLOPs, N params, D tokens, label).
REFERENCE_ALLOCATIONS = tuple((m.C, m.N, m.D, m.name) for m in REFERENCE_MODELS)


@styled
def plot_allocation(allocations: Sequence[Any], *, extend_to: float | None = GPT3_175B.C) -> Figure:
    """N_opt(C) (params) and D_opt(C) (tokens) against C (FLOPs) from each approach, with 95 % bootstrap
    bands, the points each power law went through, and GPT-3 175B and Chinchilla 70B for scale.

    allocations: `scaling.study.allocation.Allocation`s (one per approach)."""
    if not allocations:
        raise FigureNotSupported("no allocations to draw")
    fig, axes = new_figure(ncols=2, width=9.0, height=4.2)
    c_lo = min(
        float(a.points["C"].min()) if a.points is not None and len(a.points) else math.inf
        for a in allocations
    )
    if not math.isfinite(c_lo):
        c_lo = min(a.budgets.get("largest run", extend_to or 1e20) for a in allocations) / 100
    c_data = max(
        float(a.points["C"].max()) if a.points is not None and len(a.points) else 0.0 for a in allocations
    )
    c_hi = max(c_data, extend_to or 0.0, *(c for c, *_ in REFERENCE_ALLOCATIONS)) * 3
    grid = np.geomspace(c_lo / 3, c_hi, 300)
    handles: list = []
    # the y range follows the curves, points and references; a wide band is cut off rather than squash them
    y_values: dict[str, list[float]] = {
        "N": [n for _, n, _, _ in REFERENCE_ALLOCATIONS],
        "D": [d for _, _, d, _ in REFERENCE_ALLOCATIONS],
    }
    for allocation in allocations:
        colour = f"C{allocation.approach - 1}"
        for ax, which in ((axes[0], "N"), (axes[1], "D")):
            curve = allocation.optimal.N_opt(grid) if which == "N" else allocation.optimal.D_opt(grid)
            ax.plot(grid, curve, color=colour, lw=1.5, zorder=3)
            y_values[which] += [float(curve.min()), float(curve.max())]
            if allocation.bootstrap is not None and len(allocation.bootstrap) > 1:
                resampled = ComputeOptimal(*(allocation.bootstrap[:, i, None] for i in range(3)))  # a, b, G
                samples = resampled.N_opt(grid) if which == "N" else resampled.D_opt(grid)
                lo, hi = _bootstrap_band(samples)
                ax.fill_between(grid, lo, hi, color=colour, alpha=0.15, lw=0, zorder=1)
            if allocation.points is not None and len(allocation.points):
                y_values[which] += [float(v) for v in allocation.points[which].agg(["min", "max"])]
                ax.scatter(
                    allocation.points["C"],
                    allocation.points[which],
                    color=colour,
                    s=14,
                    edgecolors="none",
                    alpha=0.8,
                    zorder=4,
                )
        ci = allocation.ci.get("a")
        shown = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        handles.append(
            Line2D(
                [],
                [],
                color=colour,
                lw=1.5,
                label=f"{APPROACH_NAME[allocation.approach]}: a = {allocation.a:.3f}{shown}",
            )
        )
    for ax, which in ((axes[0], "N"), (axes[1], "D")):
        for (c, n, d, _), marker in zip(REFERENCE_ALLOCATIONS, "*P", strict=True):
            ax.plot(
                c,
                n if which == "N" else d,
                marker=marker,
                ms=11,
                color="gold",
                mec="k",
                mew=0.7,
                zorder=5,
                ls="",
            )
        if c_data:
            ax.axvspan(c_data, grid[-1], color="0.5", alpha=0.08, lw=0, zorder=0)
        _log_axes(ax, x=True, y=True)
        ax.set_xlabel(LABEL["C"])
        ax.set_xlim(grid[0], grid[-1])
        ax.set_ylim(min(y_values[which]) / 2, max(y_values[which]) * 2)
    axes[0].set_ylabel("compute-optimal parameters N_opt (params)")
    axes[1].set_ylabel("compute-optimal tokens D_opt (tokens)")
    for (_, _, _, label), marker in zip(REFERENCE_ALLOCATIONS, "*P", strict=True):
        handles.append(Line2D([], [], ls="", marker=marker, ms=9, color="gold", mec="k", label=label))
    handles.append(Patch(color="0.5", alpha=0.25, label="beyond the data (extrapolated)"))
    handles.append(Patch(color="0.5", alpha=0.45, label="95 % bootstrap band (shaded per approach)"))
    handles.append(Line2D([], [], ls="", marker="o", ms=4, color="0.4", label="points each power law fits"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    fig.suptitle("Compute-optimal allocation, N_opt ∝ C^a and D_opt ∝ C^b", fontsize=10)
    return fig


@styled
def plot_backtest(result: Any, table: pd.DataFrame | None = None) -> Figure:
    """A backtest (the law fitted on the runs of lower compute, predicting the rest): predicted against
    observed loss (nats/token), and the relative error against compute (FLOPs); the fitted runs in grey
    when `table` (the full run table) is given.

    result: `scaling.fitting.backtest.Backtest`."""
    held = result.runs
    fig, axes = new_figure(ncols=2, width=9.6, height=4.3)
    norm = size_norm(held["N"])
    observed, predicted = [held["loss"].to_numpy(float)], [held["predicted"].to_numpy(float)]
    if table is not None:
        train = table[table["C"] <= result.cutoff_C]
        unique = train["U"].to_numpy(float) if "U" in train else None
        fitted = law_loss_at(result.fit, train["N"].to_numpy(float), train["D"].to_numpy(float), unique)
        axes[0].scatter(train["loss"], fitted, color="0.65", s=12, edgecolors="none", zorder=2)
        axes[1].scatter(
            train["C"],
            100 * (fitted - train["loss"]) / train["loss"],
            color="0.65",
            s=12,
            edgecolors="none",
            zorder=2,
        )
        observed.append(train["loss"].to_numpy(float))
        predicted.append(fitted)
    for ax, x, y in (
        (axes[0], held["loss"], held["predicted"]),
        (axes[1], held["C"], 100 * held["rel_error"]),
    ):
        ax.scatter(
            x, y, c=held["N"], cmap=SIZE_CMAP, norm=norm, s=30, edgecolors="k", linewidths=0.4, zorder=3
        )
    values = np.concatenate(observed + predicted)
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo)
    axes[0].plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=0.8, ls="--", zorder=1)
    axes[0].set_xlim(lo - pad, hi + pad)
    axes[0].set_ylim(lo - pad, hi + pad)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel("observed " + LABEL["loss"])
    axes[0].set_ylabel("predicted " + LABEL["loss"])
    axes[1].axhline(0.0, color="0.3", lw=0.8, ls="--")
    axes[1].axvline(result.cutoff_C, color="0.35", ls=":", lw=1.0)
    _log_axes(axes[1])
    axes[1].set_xlabel(LABEL["C"])
    axes[1].set_ylabel("relative error (predicted − observed) / observed (%)")
    fig.suptitle(
        f"Backtest: {result.law} fitted on the runs with C ≤ {sci(result.cutoff_C)} FLOPs; held-out runs: "
        f"mean |error| {result.mean_abs_rel_error:.2%}, max {result.max_abs_rel_error:.2%}",
        fontsize=10,
    )
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            color=mpl.colormaps[SIZE_CMAP](0.5),
            mec="k",
            mew=0.4,
            label=f"held-out run ({len(held)}; colour: N)",
        )
    ]
    if table is not None:
        handles.append(Line2D([], [], ls="", marker="o", ms=4, color="0.65", label="run fitted on"))
    handles.append(Line2D([], [], color="0.3", lw=0.8, ls="--", label="no error"))
    handles.append(Line2D([], [], color="0.35", lw=1.0, ls=":", label="compute cutoff of the fit"))
    axes[1].legend(handles=handles, loc="best")
    add_size_colorbar(fig, axes, norm)
    return fig


@styled
def plot_plan(plan: Any) -> Figure:
    """A planned sweep in the (N, D) plane: its runs (marker area: runs at that point), the IsoFLOP design
    of the same compute it was compared with, runs already trained, the target, the prior's
    compute-optimal line and iso-compute lines (FLOPs), the single-run budget among them.

    plan: `scaling.study.planning.SweepPlan`."""
    runs = pd.DataFrame([{"N": r.N, "D": r.D} for r in plan.runs])
    points = runs.groupby(["N", "D"]).size().reset_index(name="count")
    iso = np.array(plan.isoflop_runs)
    known = np.array(plan.runs_so_far).reshape(-1, 2)
    target = plan.target
    all_n = np.concatenate([points["N"], iso[:, 0], known[:, 0], [target["N"]]])
    all_d = np.concatenate([points["D"], iso[:, 1], known[:, 1], [target["D"]]])
    n_range = (float(all_n.min()) / 4, float(all_n.max()) * 4)
    d_range = (float(all_d.min()) / 4, float(all_d.max()) * 4)
    n_line = np.geomspace(*n_range, 200)

    fig, (ax,) = new_figure(width=7.0, height=6.6)
    _log_axes(ax, x=True, y=True)
    log_c = np.log10(training_flops(np.array(n_range), np.array(d_range)))
    levels = np.arange(math.ceil(log_c[0]), math.floor(log_c[1]) + 1)
    levels = levels[:: max(1, math.ceil(len(levels) / 10))]
    for level in levels:
        ax.plot(n_line, tokens_for_compute(10.0**level, n_line), color="0.25", lw=0.6, ls=":", zorder=1)
    _label_iso_lines(ax, levels, n_range, d_range)
    ax.plot(n_line, tokens_for_compute(plan.budget, n_line), color="#c0392b", lw=1.0, ls="--", zorder=1)
    optimal = get_law(plan.law).compute_optimal(plan.prior_params)
    if optimal is not None:
        line_c = np.geomspace(training_flops(n_range[0], d_range[0]), 6 * target["C"], 300)
        ax.plot(optimal.N_opt(line_c), optimal.D_opt(line_c), color="k", lw=1.4, zorder=2)
    ax.scatter(iso[:, 0], iso[:, 1], marker="s", s=30, facecolors="none", edgecolors="0.45", lw=0.9, zorder=3)
    if len(known):
        ax.scatter(known[:, 0], known[:, 1], marker="x", s=28, color="k", lw=1.0, zorder=4)
    ax.scatter(
        points["N"], points["D"], s=36 * points["count"], color="#2471a3", edgecolors="k", lw=0.5, zorder=5
    )
    ax.scatter(
        [target["N"]], [target["D"]], marker="*", s=220, color="gold", edgecolors="k", lw=0.7, zorder=6
    )
    ax.annotate(
        f"target: {format_quantity(target['N'])} params,\n{format_quantity(target['D'])} tokens",
        (target["N"], target["D"]),
        xytext=(-10, 0),
        textcoords="offset points",
        ha="right",
        va="center",
        fontsize=7.5,
        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        zorder=6,
    )
    ax.set_xlim(*n_range)
    ax.set_ylim(*d_range)
    ax.set_xlabel(LABEL["N"])
    ax.set_ylabel(LABEL["D"])
    ax.set_title(
        f"Planned sweep: {len(plan.runs)} runs at {len(points)} points, {sci(plan.spent)} of "
        f"{sci(plan.budget)} FLOPs\nexpected 95 % interval at the target "
        f"{plan.interval_width:.3g} nats/token "
        f"(IsoFLOP design: {plan.isoflop_interval_width:.3g})",
        pad=14,
    )
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            ms=6,
            color="#2471a3",
            mec="k",
            mew=0.5,
            label="planned run (area: runs with other seeds)",
        ),
        Line2D(
            [],
            [],
            ls="",
            marker="s",
            ms=5,
            mfc="none",
            mec="0.45",
            label=f"IsoFLOP design of the same compute ({len(iso)} runs)",
        ),
    ]
    if len(known):
        handles.append(
            Line2D([], [], ls="", marker="x", ms=5, color="k", label=f"runs so far ({len(known)})")
        )
    handles += [
        Line2D([], [], ls="", marker="*", ms=11, color="gold", mec="k", label="target"),
        Line2D([], [], color="k", lw=1.4, label="compute-optimal under the prior"),
        Line2D([], [], color="0.25", lw=0.6, ls=":", label="iso-compute C = 6ND (labelled in FLOPs)"),
        Line2D(
            [],
            [],
            color="#c0392b",
            lw=1.0,
            ls="--",
            label=f"the whole budget in one run ({sci(plan.budget)})",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    return fig
