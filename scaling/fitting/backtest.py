"""Backtest: how far to trust an extrapolation of a fitted law.

Units: N params, D tokens, C FLOPs, loss nats/token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.defaults import HOLDOUT_TOP
from scaling.errors import UsageError
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.runs.table import compute_frontier, load_runs


@dataclass(frozen=True)
class Backtest:
    """Extrapolation check: `law` fitted on the runs of compute C <= `cutoff_C` FLOPs, predicting the
    held-out runs above it (the top `holdout_top` fraction by compute).

    `runs`: one row per held-out run with N, D, C, loss, `predicted` (nats/token) and `rel_error`
    = (predicted - loss) / loss. For kaplan_c (a law of the frontier) only frontier runs are held out."""

    law: str
    holdout_top: float
    cutoff_C: float
    fit: FitResult
    runs: pd.DataFrame
    mean_abs_rel_error: float
    mean_rel_error: float
    max_abs_rel_error: float

    def to_json(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "holdout_top": self.holdout_top,
            "cutoff_C": self.cutoff_C,
            "n_train": self.fit.n_points,
            "n_heldout": len(self.runs),
            "mean_abs_rel_error": self.mean_abs_rel_error,
            "mean_rel_error": self.mean_rel_error,
            "max_abs_rel_error": self.max_abs_rel_error,
            "runs": self.runs.to_dict(orient="records"),
            "fit": {**self.fit.to_json(), "bootstrap_params": None},
        }

    def describe(self) -> str:
        lines = [
            f"backtest: {self.law} fitted on the {self.fit.n_points} runs with C <= {self.cutoff_C:.3g} "
            "FLOPs, "
            f"predicting the {len(self.runs)} above (top {self.holdout_top:.0%} by compute)",
            f"  mean |relative error| {self.mean_abs_rel_error:.2%}, mean signed {self.mean_rel_error:+.2%}, "
            f"max {self.max_abs_rel_error:.2%} of the loss",
            "      N (params)    D (tokens)   C (FLOPs)  loss (nats/token)  predicted  rel. error",
        ]
        for row in self.runs.itertuples():
            lines.append(
                f"  {row.N:12.4g}  {row.D:12.4g}  {row.C:10.3g}  {row.loss:17.4f}  {row.predicted:9.4f}  "
                f"{row.rel_error:+10.2%}"
            )
        return "\n".join(lines)


def backtest(
    table: pd.DataFrame | str | Path, law: str = "chinchilla", holdout_top: float = HOLDOUT_TOP, **fit_options
) -> Backtest:
    """Fit `law` on all but the top `holdout_top` fraction of runs by compute and report the relative
    prediction error on those (how far to trust an extrapolation). `fit_options` go to `fit`."""
    if not 0 < holdout_top < 1:
        raise UsageError(f"`holdout_top` must be a fraction between 0 and 1, got {holdout_top}")
    table = load_runs(table)
    C = np.sort(table["C"].to_numpy())
    n_train = len(C) - max(1, round(holdout_top * len(C)))
    if n_train < 1:
        raise UsageError(f"`holdout_top` {holdout_top} leaves no run to fit on")
    cutoff = float(C[n_train - 1])
    train, held = table[table["C"] <= cutoff], table[table["C"] > cutoff]
    if law == "kaplan_c":
        on_frontier = compute_frontier(table)
        held = on_frontier[on_frontier["C"] > cutoff]
    if held.empty:
        raise UsageError(f"no run has more compute than the cutoff {cutoff:.3g} FLOPs; lower `holdout_top`")
    result = fit(train, law=law, **fit_options)
    predicted = result.predict(**{k: held[k].to_numpy(float) for k in ("N", "D", "C", "U") if k in held})
    runs = held[[c for c in ("N", "D", "C", "loss", "run") if c in held]].reset_index(drop=True)
    runs = runs.assign(predicted=predicted, rel_error=(predicted - runs["loss"]) / runs["loss"])
    runs = runs.sort_values("C", kind="stable").reset_index(drop=True)
    errors = runs["rel_error"].to_numpy()
    return Backtest(
        law=result.law,
        holdout_top=holdout_top,
        cutoff_C=cutoff,
        fit=result,
        runs=runs,
        mean_abs_rel_error=float(np.abs(errors).mean()),
        mean_rel_error=float(errors.mean()),
        max_abs_rel_error=float(np.abs(errors).max()),
    )
