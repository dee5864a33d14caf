"""The figure of `scaling hparams`: each (N, D) setting's loss landscape over (lr, batch) with its optima."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scaling.report.style import STYLE, styled
from scaling.study.hparams import HparamLaws

MAX_COLUMNS = 4


@styled
def landscape_figure(runs: pd.DataFrame, laws: HparamLaws) -> Figure:
    """One panel per setting: runs at (lr, batch tokens) coloured by loss relative to the setting's best,
    the setting's optimum (star) and the fitted laws' prediction (ring)."""
    n = len(laws.settings)
    cols = min(MAX_COLUMNS, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols + 0.8, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    artist = None
    for ax, s in zip(axes, laws.settings, strict=False):
        g = runs[(runs["N"] == s.N) & (runs["D"] == s.D)]
        gap = 100 * (g["loss"].to_numpy() / g["loss"].min() - 1)
        artist = ax.scatter(g["lr"], g["batch"], c=np.minimum(gap, 5.0), cmap="viridis_r", vmin=0, vmax=5,
                            s=28, edgecolors="none")
        ax.plot(s.lr, s.batch, marker="*", ms=13, color="#c0392b", mec="white", ls="none",
                label=f"optimum ({s.method})")
        ax.plot(laws.lr(s.N, s.D), laws.batch(s.N, s.D), marker="o", ms=11, mfc="none", mec="black",
                ls="none", label="fitted law")
        ax.set(xscale="log", yscale="log", title=f"N={s.N:.3g}  D={s.D:.3g}", xlabel="peak learning rate",
               ylabel="batch (tokens)")
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small", loc="best")
    if artist is not None:
        fig.colorbar(artist, ax=list(axes[:n]), label="loss above the setting's best (%, capped at 5)")
    return fig


def save_landscape(fig: Figure, path: str) -> None:
    """Write the figure to `path` (its suffix picks the format)."""
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        fig.savefig(path)
