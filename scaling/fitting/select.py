"""Law choice by rolling backtest: which law (and which runs to fit it on) extrapolates best on these runs.

A rolling-origin backtest (as the OLMo model ladder's "rollout" does): for each of several compute
cut-offs, fit a candidate on the runs at or below the cut-off and predict every run above it. A candidate
is a law of `scaling.fitting.laws.LAW_NAMES` whose inputs the table has (data_constrained only with a U
column) fitted on all runs or without the runs of the smallest model size(s). Its score, the rolling error,
is the mean over cut-offs of the mean |relative error| of the predicted loss of the held-out runs
(`scaling.fitting.backtest.backtest` with `rolling` fractions). The default
candidate (chinchilla on all runs, the law most extrapolations in the literature use) is kept unless another
beats it clearly: its fold-by-fold error is lower on average by more than the standard error of that
paired difference (Breiman's one-standard-error rule, applied against the default); of those that do, the
lowest rolling error wins. Each fold's fit is bootstrapped too, so the backtest also measures how often
the held-out runs fall inside their 95 % prediction interval and inside the interval of the mean law
(`scaling.fitting.intervals`): the empirical coverage of the intervals a prediction reports. `fit_auto` fits
the chosen law (`scaling fit --law auto`); the choice is made of fits, so this module sits above `fitting`.

Defaults (chosen before looking at any benchmark, see README "Law choice by rolling backtest"):
- cut-offs at 50, 60, 70 and 80 % of the runs by compute: four origins, the farthest extrapolating over
  the top half of the compute range, the nearest like `--holdout-top 0.2`;
- candidate subsets: all runs, and without the smallest model size (small models often sit off a law
  that holds for larger ones; dropping more would leave too few sizes in the early folds of a ladder).
- a challenger must beat the default by more than one standard error of the paired fold differences.
  This rule came after the first benchmark (README "Extrapolation benchmark"): with the lowest mean alone,
  a four-parameter law won folds fitted on half the runs and lost the folds fitted on most of them, then
  extrapolated 12-15 % off; a mean over four noisy folds is no evidence to leave the default on.

Units: N params, D tokens, C FLOPs, loss nats/token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.defaults import HUBER_DELTA
from scaling.errors import UsageError
from scaling.fitting.backtest import (
    AXIS_UNITS,
    AXIS_WORDS,
    BACKTEST_BOOTSTRAP,
    MIN_FOLDS,
    TRAIN_FRACTIONS,
    Backtest,
    backtest,
    drop_smallest_sizes,
    rolling_cutoffs,
)
from scaling.fitting.data import use_params_column
from scaling.fitting.laws import LAW_NAMES, get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.runs.table import load_runs

DROP_SMALLEST = (0, 1)  # candidate fit subsets: drop this many of the smallest model sizes
DEFAULT_CANDIDATE = ("chinchilla", 0)  # (law, smallest sizes dropped) kept unless clearly beaten


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's rolling backtest. rolling_error: mean over folds of the mean |relative error| of
    the predicted loss of the held-out runs; fold_errors: that per fold (lowest cut-off first);
    coverage_run / coverage_mean: fraction of all held-out predictions inside the 95 % prediction interval
    of one run / the interval of the mean law. `failed` says why a candidate has no score."""

    law: str
    drop_smallest: int
    rolling_error: float
    fold_errors: tuple[float, ...]
    coverage_run: float | None
    coverage_mean: float | None
    n_predictions: int
    failed: str | None = None

    @property
    def subset(self) -> str:
        return subset_name(self.drop_smallest)

    @classmethod
    def of(cls, check: Backtest) -> CandidateScore:
        """The score of a rolling backtest."""
        return cls(
            law=check.law,
            drop_smallest=check.drop_smallest,
            rolling_error=check.rolling_error,
            fold_errors=check.fold_errors,
            coverage_run=check.coverage("run"),
            coverage_mean=check.coverage("mean"),
            n_predictions=check.n_predictions,
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "fold_errors": list(self.fold_errors), "subset": self.subset}


def subset_name(drop_smallest: int) -> str:
    if drop_smallest == 0:
        return "all runs"
    return f"without the {drop_smallest} smallest model size" + ("s" if drop_smallest > 1 else "")


def clearly_better(challenger: CandidateScore, default: CandidateScore) -> bool:
    """Whether `challenger`'s fold errors are lower than `default`'s by more than the standard error of
    their paired differences (folds share their held-out runs, so the differences are paired)."""
    diff = np.asarray(default.fold_errors, float) - np.asarray(challenger.fold_errors, float)
    if diff.size < 2 or not np.isfinite(challenger.rolling_error):
        return False
    if not np.isfinite(diff).all():  # the default failed a fold the challenger predicted
        return True
    return bool(diff.mean() > diff.std(ddof=1) / np.sqrt(diff.size))


@dataclass(frozen=True)
class LawChoice:
    """The chosen law and fit subset, with every candidate's score (the chosen first, then by rolling
    error, failed ones last), the cut-offs of the folds and whether the default was kept."""

    law: str
    drop_smallest: int
    scores: tuple[CandidateScore, ...]
    cutoffs: tuple[float, ...]
    axis: str = "C"
    kept_default: bool = False

    @property
    def best(self) -> CandidateScore:
        """The chosen candidate's score."""
        return self.scores[0]

    @property
    def runner_up(self) -> CandidateScore | None:
        """The best candidate of another law (a different subset of the same law is no alternative)."""
        others = [s for s in self.scores if s.failed is None and s.law != self.law]
        return others[0] if others else None

    def fit_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """The runs the chosen law is fitted on."""
        return drop_smallest_sizes(table, self.drop_smallest)

    @property
    def reason(self) -> str:
        best, other = self.best, self.runner_up
        folds = f"over {len(self.cutoffs)} {AXIS_WORDS[self.axis]} cut-offs"
        if self.kept_default:
            text = (
                f"law {best.law} fitted on {best.subset}, the default, kept: rolling-backtest error "
                f"{best.rolling_error:.2%} of the loss {folds}, and no other candidate was lower by more "
                "than the standard error of its fold-by-fold difference"
            )
        else:
            text = (
                f"law {best.law} fitted on {best.subset}: rolling-backtest error {best.rolling_error:.2%} of "
                f"the loss {folds}, clearly below the default's (by more than the standard error of the "
                "fold-by-fold difference)"
            )
        if other is not None:
            text += f"; runner-up {other.law} ({other.subset}) {other.rolling_error:.2%}"
        return text

    def describe(self) -> str:
        return describe_selection(self.to_json())

    def to_json(self) -> dict[str, Any]:
        runner = self.runner_up
        return {
            "law": self.law,
            "subset": subset_name(self.drop_smallest),
            "drop_smallest": self.drop_smallest,
            "rolling_error": self.best.rolling_error,
            "runner_up": None if runner is None else {"law": runner.law, "subset": runner.subset,
                                                      "rolling_error": runner.rolling_error},
            "reason": self.reason,
            "kept_default": self.kept_default,
            "axis": self.axis,
            "cutoffs": list(self.cutoffs),
            "scores": [s.to_json() for s in self.scores],
        }


def describe_selection(selection: dict[str, Any]) -> str:
    """The table law x fit subset x rolling error x interval coverage of `LawChoice.to_json()`, and the
    choice (what `scaling fit --law auto` prints)."""
    cuts, axis = selection["cutoffs"], selection["axis"]
    lines = [
        f"law choice by rolling backtest: fit on the runs with {axis} <= each of {len(cuts)} cut-offs "
        f"({', '.join(f'{c:.3g}' for c in cuts)} {AXIS_UNITS[axis]}), predict the runs above",
        f"  {'law':<18s} {'fit subset':<36s} {'rolling error':>13s} {'95 % PI cover':>13s} "
        f"{'mean-law cover':>14s}",
    ]
    for s in selection["scores"]:
        if s["failed"]:
            lines.append(f"  {s['law']:<18s} {s['subset']:<36s} not scored: {s['failed']}")
            continue
        lines.append(
            f"  {s['law']:<18s} {s['subset']:<36s} {s['rolling_error']:13.2%} {_pct(s['coverage_run']):>13s} "
            f"{_pct(s['coverage_mean']):>14s}"
        )
    lines.append(f"chosen: {selection['reason']}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def score_candidate(
    table: pd.DataFrame,
    law: str,
    drop_smallest: int,
    fractions: Sequence[float] = TRAIN_FRACTIONS,
    *,
    bootstrap: int = BACKTEST_BOOTSTRAP,
    seed: int = 0,
    axis: str = "C",
    **fit_options: Any,
) -> CandidateScore:
    """The rolling backtest of `law` fitted without the `drop_smallest` smallest model sizes, scored on
    every run (of any size) above each cut-off; a failed score says why it could not be fitted."""
    try:
        check = backtest(
            table, law, rolling=fractions, axis=axis, drop_smallest=drop_smallest, bootstrap=bootstrap,
            seed=seed, **fit_options,
        )
    except UsageError as exc:
        return CandidateScore(law, drop_smallest, np.inf, (), None, None, 0, failed=str(exc))
    return CandidateScore.of(check)


def candidate_laws(table: pd.DataFrame) -> tuple[str, ...]:
    """Every law whose inputs the table has (N, D and C always; U only when every run gives it)."""
    has_u = "U" in table and bool(table["U"].notna().all())
    return tuple(name for name in LAW_NAMES if has_u or "U" not in get_law(name).inputs)


def choose_law(
    table: pd.DataFrame | str,
    laws: Sequence[str] | None = None,
    drop_smallest: Sequence[int] = DROP_SMALLEST,
    fractions: Sequence[float] = TRAIN_FRACTIONS,
    bootstrap: int = BACKTEST_BOOTSTRAP,
    seed: int = 0,
    axis: str = "C",
    **fit_options: Any,
) -> LawChoice:
    """Backtest every candidate (law x fit subset) on rolling compute cut-offs; the default candidate
    (`DEFAULT_CANDIDATE`) stays unless others are `clearly_better`, the lowest rolling error of those wins.
    UsageError when the runs are too few for `MIN_FOLDS` cut-offs or no candidate can be fitted."""
    table = load_runs(table)
    cutoffs = rolling_cutoffs(table, fractions, axis)
    if len(cutoffs) < MIN_FOLDS:
        raise UsageError(
            f"`law` auto needs enough runs to backtest: at least {MIN_FOLDS} {AXIS_WORDS[axis]} cut-offs "
            f"with runs above them, and these {len(table)} runs give {len(cutoffs)}; add runs or name a law"
        )
    laws = candidate_laws(table) if laws is None else tuple(laws)
    scores = [
        score_candidate(table, law, k, fractions, bootstrap=bootstrap, seed=seed, axis=axis, **fit_options)
        for law in laws
        for k in drop_smallest
    ]
    scored = sorted((s for s in scores if s.failed is None), key=lambda s: s.rolling_error)
    if not scored or not np.isfinite(scored[0].rolling_error):
        reasons = "; ".join(sorted({f"{s.law}: {s.failed}" for s in scores if s.failed}))
        reasons = reasons or "no finite prediction"
        raise UsageError(f"`law` auto: too few runs to backtest any law ({reasons})")
    failed = [s for s in scores if s.failed is not None]
    default = next((s for s in scored if (s.law, s.drop_smallest) == DEFAULT_CANDIDATE), None)
    challengers = [s for s in scored if default is None or clearly_better(s, default)]
    best = challengers[0] if challengers else default
    ordered = [best] + [s for s in scored if s is not best]
    return LawChoice(best.law, best.drop_smallest, tuple(ordered + failed), cutoffs, axis, best is default)


def fit_auto(
    table: pd.DataFrame | str | Path,
    axis: str = "C",
    *,
    params_column: str = "N",
    loss: str = "huber",
    delta: float = HUBER_DELTA,
    **fit_options: Any,
) -> FitResult:
    """`--law auto`: fit the law, on the fit subset, that `choose_law` picks by a rolling backtest whose
    cut-offs cut `axis` ("C", compute in FLOPs, or "N", model size in params). The choice is recorded in
    `FitResult.selection` (`LawChoice.to_json()`). params_column, loss and delta apply to the backtest's
    fits and the final one; `fit_options` (bootstrap, seed, method, procedure, base) to the final fit."""
    table = use_params_column(load_runs(table), params_column)
    choice = choose_law(table, axis=axis, loss=loss, delta=delta)
    result = fit(
        choice.fit_table(table), law=choice.law, params_column=params_column, loss=loss, delta=delta,
        **fit_options,
    )
    return replace(result, selection=choice.to_json())
