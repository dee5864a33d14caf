"""Figures of what the runs tell: IsoFLOP profiles, allocations by approach, the backtest, a planned sweep.

One function per figure, each returning a matplotlib `Figure`, from the public results
(`scaling.study.allocation.Allocation`, `scaling.fitting.backtest.Backtest`,
`scaling.study.planning.SweepPlan`),
drawn with `scaling.report.style`. Units: N params, D tokens, C FLOPs, loss nats/token.
A figure the data cannot support raises `scaling.errors.FigureNotSupported` (the report leaves it out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
from scaling.fitting.optimal import ComputeOptimal
from scaling.reference import (
    GPT3_175B,
    REFERENCE_MODELS,
    tokens_for_compute,
    training_flops,
)
from scaling.report.style import (
    LABEL,
    SIZE_CMAP,
    add_size_colorbar,
    bootstrap_band,
    dark_cmap,
    label_iso_lines,
    law_loss_at,
    log_axes,
    new_figure,
    size_norm,
    styled,
)
from scaling.units import format_quantity, sci


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
    cmap = dark_cmap("plasma")
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
    log_axes(ax)
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
                lo, hi = bootstrap_band(samples)
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
        log_axes(ax, x=True, y=True)
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
    log_axes(axes[1])
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
    log_axes(ax, x=True, y=True)
    log_c = np.log10(training_flops(np.array(n_range), np.array(d_range)))
    levels = np.arange(math.ceil(log_c[0]), math.floor(log_c[1]) + 1)
    levels = levels[:: max(1, math.ceil(len(levels) / 10))]
    for level in levels:
        ax.plot(n_line, tokens_for_compute(10.0**level, n_line), color="0.25", lw=0.6, ls=":", zorder=1)
    label_iso_lines(ax, levels, n_range, d_range)
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
