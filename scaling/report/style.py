"""The shared look of every figure, and the helpers the figures are drawn with.

`STYLE` (rc parameters) is applied by `styled`; `new_figure` builds a `matplotlib.figure.Figure` directly,
never through pyplot, so no GUI backend is touched; `save_figure` writes PNG and PDF. Colour by model size
N (params) on a log colour bar (`size_norm`, `add_size_colorbar`); log axes for N, D (tokens), C (FLOPs);
loss in nats/token. The law's curves the figures draw (the fitted loss at (N, D), the compute-optimal
loss L(C) with its bootstrap band) are evaluated here, so every figure draws them the same way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from scaling.fitting.intervals import percentile_interval
from scaling.fitting.laws import get_law
from scaling.reference import REFERENCE_MODELS, params_for_compute, tokens_for_compute
from scaling.study.regimes import BALANCED, OVERFITTING, UNDERFITTING
from scaling.units import format_quantity

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
    png, pdf = paths = [f"{stem}.png", f"{stem}.pdf"]
    engine = fig.get_layout_engine()
    with mpl.rc_context(STYLE):
        fig.savefig(png, dpi=dpi)
        # The layout, laid out for the PNG, holds for the PDF: laying it out again (a whole draw more)
        # was a third of the time a report took.
        fig.set_layout_engine("none")
        try:
            fig.savefig(pdf, dpi=dpi)
        finally:
            fig.set_layout_engine(engine)
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


def log_axes(ax: Axes, x: bool = True, y: bool = False) -> None:
    if x:
        ax.set_xscale("log")
    if y:
        ax.set_yscale("log")


def log_span(values: np.ndarray, pad: float = 1.5) -> np.ndarray:
    """A log-spaced grid from min/pad to max*pad."""
    return np.geomspace(float(np.min(values)) / pad, float(np.max(values)) * pad, 200)


def bootstrap_band(samples: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The 95 % percentile band over the first axis of (K, n) samples, ignoring non-finite ones."""
    if samples is None or len(samples) < 2:
        return None
    lo, hi = percentile_interval(samples)
    return lo, hi


# ---- the law's curves, as every figure draws them ------------------------------------------------
def _param_sets(fit_result: Any) -> list[dict[str, float]]:
    law = get_law(fit_result.law)
    if fit_result.bootstrap_params is None:
        return []
    return [dict(zip(law.param_names, row, strict=True)) for row in fit_result.bootstrap_params]


def optimal_loss(law_name: str, params: Mapping[str, float], C: np.ndarray) -> np.ndarray | None:
    """L(C) in nats/token: the law's loss at the compute-optimal allocation of C FLOPs (Approach 3),
    or the law itself for a law in C alone (kaplan_c, saturating_c); None for laws that cannot say (kaplan_n,
    saturating_d...)."""
    law = get_law(law_name)
    if law.inputs == ("C",):
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
    if not fit_result.identifies_allocation:  # the runs do not determine the compute-optimal split
        return None, None
    central = optimal_loss(fit_result.law, fit_result.params, C)
    if central is None:
        return None, None
    sets = [] if fit_result.bootstrap_unreliable else _param_sets(fit_result)
    samples = [optimal_loss(fit_result.law, p, C) for p in sets]
    band = bootstrap_band(np.array(samples)) if samples else None
    return central, band


def law_loss_at(fit_result: Any, N, D, U=None) -> np.ndarray:
    """The fitted loss (nats/token) at N params, D tokens; U unique tokens (default D: no repeats) only
    where the law reads it."""
    if "U" not in get_law(fit_result.law).inputs:
        return fit_result.predict(N=N, D=D)
    return fit_result.predict(N=N, D=D, U=D if U is None else U)


# ---- colours and labels --------------------------------------------------------------------------
def dark_cmap(name: str, top: float = 0.88) -> mpl.colors.Colormap:
    """A sequential colour map without its palest end, so every colour shows on white."""
    base = mpl.colormaps[name]
    return mpl.colors.ListedColormap(base(np.linspace(0.0, top, 256)), name=f"{name}_dark")


def label_iso_lines(ax: Axes, levels: np.ndarray, n_range, d_range) -> None:
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
