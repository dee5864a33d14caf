"""Backtest: how far to trust an extrapolation of a fitted law. The one home of every backtest.

A fold fits `law` on the runs at or below a cut-off of compute C (or model size N) and predicts the runs
above it. Where the cut-offs go is a parameter of `backtest`:
- a single hold-out (`holdout_top`, the default): one cut-off that leaves the top fraction of the runs by
  compute out (`scaling fit --holdout-top`, the report's backtest). For kaplan_c, a law of the
  compute-efficient frontier, only the frontier runs above it are held out.
- rolling origins (`rolling`, fractions of the runs; as the OLMo model ladder's "rollout"): one fold per
  cut-off, each scoring every run above it, so that the law choice (`scaling.fitting.select`) compares
  every candidate on the same runs. Each fold's fit may be bootstrapped (`bootstrap`), so that the
  backtest also measures how often the held-out runs fall inside their 95 % prediction interval and the
  interval of the mean law (`scaling.fitting.intervals`): the empirical coverage of those intervals.

Units: N params, D tokens, C FLOPs, loss nats/token.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.defaults import HOLDOUT_TOP
from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.bootstrap import refit_resamples
from scaling.fitting.data import AXES, AXIS_UNITS, AXIS_WORDS, drop_smallest_sizes
from scaling.fitting.intervals import extrapolation_rate, loss_intervals, reach
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.runs.table import compute_frontier, load_runs

FORMAT = "scaling.backtest/1"
TRAIN_FRACTIONS = (0.5, 0.6, 0.7, 0.8)  # rolling origins: fit on this fraction of the runs by compute
BACKTEST_BOOTSTRAP = 100  # resamples behind each rolling fold's intervals (coverage)
MIN_FOLDS = 2  # a rolling backtest of fewer cut-offs measures no spread
# Distinct (N, D) points a rolling cut-off leaves at or below it: three, the fewest that fit the
# three-parameter laws of one variable (saturating_n/d/c). A fold fitted on two points could score only the
# two-parameter power laws, so on a small family the laws with a floor failed every backtest and auto
# picked a pure power law (on Gadre et al.'s one-ratio families of five runs, 6-9 % off; bench/one_axis.py).
# Points, not values of the axis: a grid cut by model size has many points on its two smallest sizes.
MIN_FIT_POINTS = 3


def holdout_cutoff(table: pd.DataFrame, holdout_top: float) -> float:
    """The compute (FLOPs) at or below which all but the top `holdout_top` fraction of the runs lie."""
    if not 0 < holdout_top < 1:
        raise UsageError(f"`holdout_top` must be a fraction between 0 and 1, got {holdout_top}")
    C = np.sort(table["C"].to_numpy())
    n_train = len(C) - max(1, round(holdout_top * len(C)))
    if n_train < 1:
        raise UsageError(f"`holdout_top` {holdout_top} leaves no run to fit on")
    return float(C[n_train - 1])


def rolling_cutoffs(
    table: pd.DataFrame, fractions: Sequence[float] = TRAIN_FRACTIONS, axis: str = "C"
) -> tuple[float, ...]:
    """Cut-offs of `axis` (C FLOPs or N params): its value at the run at each fraction of the runs sorted
    by it, keeping those that leave at least one run above them and MIN_FIT_POINTS distinct (N, D) points
    at or below."""
    if axis not in AXES:
        raise UsageError(f"unknown backtest axis {axis!r}; choose one of {', '.join(AXES)}")
    unsorted = table[axis].to_numpy(float)
    points = table[["N", "D"]].to_numpy(float)
    values = np.sort(unsorted)
    cuts = []
    for fraction in fractions:
        if not 0 < fraction < 1:
            raise UsageError(f"backtest fractions must lie between 0 and 1, got {fraction}")
        cut = float(values[max(1, round(fraction * values.size)) - 1])
        enough = len(np.unique(points[unsorted <= cut], axis=0)) >= MIN_FIT_POINTS
        if values.max() > cut and cut not in cuts and enough:
            cuts.append(cut)
    return tuple(cuts)


@dataclass(frozen=True)
class Fold:
    """One cut-off: `fit`, the law fitted on the runs at or below `cutoff` (of the backtest's axis), and
    `runs`, the held-out runs above it sorted by C: N, D, C, loss, `predicted` (nats/token), `rel_error`
    = predicted / loss - 1 and, when the fit was bootstrapped, `inside_run` / `inside_mean`: whether the
    loss lies in its 95 % prediction interval / the interval of the mean law (None: no such interval).
    `mean_abs_rel_error` is inf when a prediction is not finite."""

    cutoff: float
    fit: FitResult
    runs: pd.DataFrame
    mean_abs_rel_error: float
    mean_rel_error: float
    max_abs_rel_error: float

    def __repr__(self) -> str:
        return (
            f"Fold(cutoff={self.cutoff:.4g}, n_train={self.fit.n_points}, n_heldout={len(self.runs)}, "
            f"mean_abs_rel_error={self.mean_abs_rel_error:.4g})"
        )

    def coverage(self, interval: str) -> np.ndarray | None:
        """Whether each held-out loss lies in its `interval` ("run" or "mean"); None without one."""
        column = f"inside_{interval}"
        if column not in self.runs or self.runs[column].isna().any():
            return None
        return self.runs[column].to_numpy(bool)

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff,
            "n_train": self.fit.n_points,
            "n_heldout": len(self.runs),
            "mean_abs_rel_error": self.mean_abs_rel_error,
            "mean_rel_error": self.mean_rel_error,
            "max_abs_rel_error": self.max_abs_rel_error,
            "runs": self.runs.to_dict(orient="records"),
            "fit": {**self.fit.to_json(), "bootstrap_params": None},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], cutoff_key: str = "cutoff") -> Fold:
        return cls(
            cutoff=float(obj[cutoff_key]),
            fit=FitResult.from_json(obj["fit"]),
            runs=pd.DataFrame.from_records(list(obj["runs"])),
            mean_abs_rel_error=float(obj["mean_abs_rel_error"]),
            mean_rel_error=float(obj["mean_rel_error"]),
            max_abs_rel_error=float(obj["max_abs_rel_error"]),
        )


@dataclass(frozen=True)
class Backtest:
    """Extrapolation check of `law`: one `Fold` per cut-off of `axis`, lowest first. `holdout_top` is the
    fraction a single hold-out held out by compute (None for rolling origins); `drop_smallest`: the model
    sizes left out of every fold's fit (the smallest ones). The single hold-out's view (`fit`, `runs`,
    `cutoff_C`, the errors) is that of the last fold, its only one."""

    law: str
    folds: tuple[Fold, ...]
    _: KW_ONLY
    axis: str = "C"
    holdout_top: float | None = HOLDOUT_TOP
    drop_smallest: int = 0

    @property
    def fit(self) -> FitResult:
        return self.folds[-1].fit

    @property
    def runs(self) -> pd.DataFrame:
        return self.folds[-1].runs

    @property
    def cutoff_C(self) -> float:
        """The last fold's cut-off in FLOPs (a backtest cut along compute)."""
        if self.axis != "C":
            raise AttributeError("a backtest cut along model size has no compute cut-off")
        return self.folds[-1].cutoff

    @property
    def mean_abs_rel_error(self) -> float:
        return self.folds[-1].mean_abs_rel_error

    @property
    def mean_rel_error(self) -> float:
        return self.folds[-1].mean_rel_error

    @property
    def max_abs_rel_error(self) -> float:
        return self.folds[-1].max_abs_rel_error

    @property
    def cutoffs(self) -> tuple[float, ...]:
        return tuple(fold.cutoff for fold in self.folds)

    @property
    def fold_errors(self) -> tuple[float, ...]:
        """Each fold's mean |relative error| of the predicted loss, lowest cut-off first."""
        return tuple(fold.mean_abs_rel_error for fold in self.folds)

    @property
    def rolling_error(self) -> float:
        """The mean over folds of their mean |relative error| (the law choice's score)."""
        return float(np.mean(self.fold_errors))

    @property
    def n_predictions(self) -> int:
        return sum(len(fold.runs) for fold in self.folds)

    @property
    def extrapolation(self) -> tuple[float | None, int]:
        """(rate, count): the rate of the log errors per e-fold beyond each fold's fitted runs
        (`scaling.fitting.intervals.extrapolation_rate`) and the held-out predictions behind it."""
        errors, reaches = [], []
        for fold in self.folds:
            with np.errstate(all="ignore"):
                errors.append(np.log1p(fold.runs["rel_error"].to_numpy(float)))
            reaches.append(reach(fold.fit.data_range, fold.runs["N"], fold.runs["D"]))
        return extrapolation_rate(np.concatenate(errors), np.concatenate(reaches))

    def coverage(self, interval: str) -> float | None:
        """Fraction of all held-out losses inside their `interval` ("run": the 95 % prediction interval of
        one run; "mean": the interval of the mean law); None when no fold has that interval."""
        inside = [x for fold in self.folds if (x := fold.coverage(interval)) is not None]
        return float(np.mean(np.concatenate(inside))) if inside else None

    def __repr__(self) -> str:
        kind = f"holdout_top={self.holdout_top}" if self.holdout_top is not None else "rolling"
        return (
            f"Backtest(law={self.law!r}, {kind}, axis={self.axis!r}, folds={len(self.folds)}, "
            f"mean_abs_rel_error={self.mean_abs_rel_error:.4g})"
        )

    def to_json(self) -> dict[str, Any]:
        if self.holdout_top is not None:  # the single hold-out's layout, as `scaling fit --json` writes it
            fold = self.folds[-1].to_json()
            return {"format": FORMAT, "law": self.law, "holdout_top": self.holdout_top,
                    "cutoff_C": fold.pop("cutoff"), **fold}
        return {
            "format": FORMAT,
            "law": self.law,
            "holdout_top": None,
            "axis": self.axis,
            "drop_smallest": self.drop_smallest,
            "rolling_error": self.rolling_error,
            "coverage_run": self.coverage("run"),
            "coverage_mean": self.coverage("mean"),
            "folds": [fold.to_json() for fold in self.folds],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Backtest:
        """Inverse of to_json; UsageError on anything else."""
        try:
            if obj.get("holdout_top") is not None:
                return cls(str(obj["law"]), (Fold.from_json(obj, "cutoff_C"),),
                           holdout_top=float(obj["holdout_top"]))
            return cls(
                str(obj["law"]),
                tuple(Fold.from_json(fold) for fold in obj["folds"]),
                axis=str(obj.get("axis", "C")),
                holdout_top=None,
                drop_smallest=int(obj.get("drop_smallest", 0)),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UsageError(f"malformed backtest: {exc}") from None

    def describe(self) -> str:
        if self.holdout_top is None:
            unit = AXIS_UNITS[self.axis]
            lines = [
                f"rolling backtest: {self.law} fitted on the runs with {self.axis} <= each of "
                f"{len(self.folds)} cut-offs, predicting the runs above; rolling error "
                f"{self.rolling_error:.2%} of the loss",
                f"  {'cut-off (' + unit + ')':>18s} {'fitted':>7s} {'held out':>9s} {'mean |error|':>13s}",
            ]
            lines += [
                f"  {f.cutoff:18.4g} {f.fit.n_points:7d} {len(f.runs):9d} {f.mean_abs_rel_error:13.2%}"
                for f in self.folds
            ]
            return "\n".join(lines)
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


def _with_fold_bootstrap(result: FitResult, train: pd.DataFrame, n: int, seed: int) -> FitResult:
    """`result` with bootstrap parameter sets from `n` batch-Newton refits (no slow refine: a rolling
    backtest bootstraps every fold of every candidate law; see `bootstrap_thetas`)."""
    thetas, _ = refit_resamples(result, train, n, seed, refine=False)
    finite = np.isfinite(thetas).all(axis=1)
    return replace(result, bootstrap_params=get_law(result.law).natural(thetas[finite]))


def _fold(
    train: pd.DataFrame, held: pd.DataFrame, cutoff: float, law: str, bootstrap: int, seed: int,
    intervals: bool, fit_options: Mapping[str, Any],
) -> Fold:
    """Fit `law` on `train` and predict `held` (errors over the held-out runs in table order); with
    `intervals`, whether each held-out loss lies in its intervals."""
    result = fit(train, law=law, **fit_options)
    if bootstrap:
        result = _with_fold_bootstrap(result, train, bootstrap, seed)
    inputs = {k: held[k].to_numpy(float) for k in ("N", "D", "C")}
    if "U" in get_law(law).inputs:
        inputs["U"] = held["U"].to_numpy(float)
    observed = held["loss"].to_numpy(float)
    with np.errstate(all="ignore"):
        predicted = np.atleast_1d(result.predict(**inputs))
        errors = predicted / observed - 1
        size = np.abs(errors)
        bands = loss_intervals(result, **inputs) if intervals else None
    runs = held[[c for c in ("N", "D", "C", "loss", "run") if c in held]].reset_index(drop=True)
    runs = runs.assign(predicted=predicted, rel_error=errors)
    if bands is not None:
        for name, lo, hi in (("run", bands.run_lo, bands.run_hi), ("mean", bands.mean_lo, bands.mean_hi)):
            runs[f"inside_{name}"] = None if lo is None else (lo <= observed) & (observed <= hi)
    return Fold(
        cutoff=cutoff,
        fit=result,
        runs=runs.sort_values("C", kind="stable").reset_index(drop=True),
        mean_abs_rel_error=float(np.mean(size)) if np.isfinite(size).all() else np.inf,
        mean_rel_error=float(errors.mean()),
        max_abs_rel_error=float(size.max()),
    )


def backtest(
    table: pd.DataFrame | str | Path,
    law: str = "chinchilla",
    *,
    holdout_top: float = HOLDOUT_TOP,
    rolling: Sequence[float] | None = None,
    axis: str = "C",
    drop_smallest: int = 0,
    bootstrap: int = 0,
    seed: int = 0,
    **fit_options: Any,
) -> Backtest:
    """Fit `law` on the runs below each cut-off and report the relative error of its predicted loss on
    the runs above (how far to trust an extrapolation).

    Parameters
    ----------
    table : DataFrame or path accepted by `scaling.runs.table.load_runs`.
    holdout_top : a single hold-out: the fraction of the runs, the top by compute, held out.
    rolling : instead, rolling origins: one cut-off of `axis` at each of these fractions of the runs
        (`rolling_cutoffs`, at least MIN_FOLDS of them), with the coverage of each fold's intervals;
        ScalingWarnings of the folds' fits are not repeated.
    axis : what rolling cut-offs cut: "C" (FLOPs) or "N" (params).
    drop_smallest : leave this many of the smallest model sizes out of every fold's fit (not its scoring).
    bootstrap, seed : resamples of each fold's fit, for the coverage of its intervals; 0 for none.
    fit_options : go to `scaling.fitting.procedure.fit`.
    """
    table = load_runs(table)
    if rolling is None:
        cutoffs, axis = (holdout_cutoff(table, holdout_top),), "C"
    else:
        cutoffs = rolling_cutoffs(table, rolling, axis)
        if len(cutoffs) < MIN_FOLDS:
            raise UsageError(
                f"{len(table)} runs give {len(cutoffs)} {AXIS_WORDS[axis]} cut-off(s); a rolling backtest "
                f"needs {MIN_FOLDS}"
            )
    subset = drop_smallest_sizes(table, drop_smallest)
    folds = []
    for cut in cutoffs:
        train, held = subset[subset[axis] <= cut], table[table[axis] > cut]
        if rolling is None and law == "kaplan_c":
            on_frontier = compute_frontier(table)
            held = on_frontier[on_frontier["C"] > cut]
        if held.empty:
            raise UsageError(f"no run has more compute than the cutoff {cut:.3g} FLOPs; lower `holdout_top`")
        with warnings.catch_warnings():
            if rolling is not None:
                warnings.simplefilter("ignore", ScalingWarning)  # per-fold notes would drown the table
            folds.append(_fold(train, held, cut, law, bootstrap, seed, rolling is not None, fit_options))
    return Backtest(
        folds[-1].fit.law if folds else law,
        tuple(folds),
        axis=axis,
        holdout_top=holdout_top if rolling is None else None,
        drop_smallest=drop_smallest,
    )
