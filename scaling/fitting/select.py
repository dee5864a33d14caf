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

Defaults (chosen before looking at any benchmark, see docs/fitting.md "Law choice by rolling backtest"):
- cut-offs at 50, 60, 70 and 80 % of the runs by compute: four origins, the farthest extrapolating over
  the top half of the compute range, the nearest like `--holdout-top 0.2`;
- candidate subsets: all runs, and without the smallest model size (small models often sit off a law
  that holds for larger ones; dropping more would leave too few sizes in the early folds of a ladder).
- a challenger must beat the default by more than one standard error of the paired fold differences.
  This rule came after the first benchmark (docs/results.md "Extrapolation benchmark"): with the lowest
  mean alone, a four-parameter law won folds fitted on half the runs and lost the folds fitted on most of
  them, then extrapolated 12-15 % off; a mean over four noisy folds is no evidence to leave the default on.

Units: N params, D tokens, C FLOPs, loss nats/token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.defaults import HUBER_DELTA
from scaling.errors import UsageError
from scaling.fitting.backtest import (
    BACKTEST_BOOTSTRAP,
    MIN_FIT_POINTS,
    MIN_FOLDS,
    TRAIN_FRACTIONS,
    Backtest,
    backtest,
    rolling_cutoffs,
)
from scaling.fitting.choice import DEFAULT_CANDIDATE, CandidateScore, LawChoice
from scaling.fitting.data import AXIS_WORDS, use_params_column
from scaling.fitting.design import Design
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.runs.table import load_runs

DROP_SMALLEST = (0, 1)  # candidate fit subsets: drop this many of the smallest model sizes


def clearly_better(challenger: CandidateScore, default: CandidateScore) -> bool:
    """Whether `challenger`'s fold errors are lower than `default`'s by more than the standard error of
    their paired differences (folds share their held-out runs, so the differences are paired)."""
    diff = np.asarray(default.fold_errors, float) - np.asarray(challenger.fold_errors, float)
    if diff.size < 2 or not np.isfinite(challenger.rolling_error):
        return False
    if not np.isfinite(diff).all():  # the default failed a fold the challenger predicted
        return True
    return bool(diff.mean() > diff.std(ddof=1) / np.sqrt(diff.size))


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
    return score_of(check)


def score_of(check: Backtest) -> CandidateScore:
    """The score of a rolling backtest."""
    rate, points = check.extrapolation
    return CandidateScore(
        law=check.law,
        drop_smallest=check.drop_smallest,
        rolling_error=check.rolling_error,
        fold_errors=check.fold_errors,
        coverage_run=check.coverage("run"),
        coverage_mean=check.coverage("mean"),
        n_predictions=check.n_predictions,
        extrapolation_rate=rate,
        extrapolation_points=points,
    )


def candidate_laws(table: pd.DataFrame) -> tuple[str, ...]:
    """Every law the runs identify (`Design.laws`: its inputs vary in the design; data_constrained only
    when every run gives U). A law identified only along a one-dimensional design is no candidate: its
    backtest would score predictions along the line, not the law."""
    return Design.of(table).laws()


def choose_law(
    table: pd.DataFrame | str,
    *,
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
    When the runs are too few for `MIN_FOLDS` cut-offs, a one-dimensional design's `Design.default_law`
    is chosen without a comparison (`LawChoice.uncompared` says so); otherwise that is a UsageError, as
    is a table no candidate can be fitted to, and a one-dimensional design that repeats its data
    (`Design.repeats`)."""
    table = load_runs(table)
    design = Design.of(table)
    if design.repeats:
        raise UsageError(f"`law` auto: {design.repeats}; or name a law to fit these runs anyway")
    cutoffs = rolling_cutoffs(table, fractions, axis)
    if len(cutoffs) < MIN_FOLDS:
        need = (
            f"at least {MIN_FOLDS} {AXIS_WORDS[axis]} cut-offs with runs above them and {MIN_FIT_POINTS} "
            f"distinct (N, D) points at or below, and these {len(table)} runs give {len(cutoffs)}"
        )
        default = design.default_law
        # a fallback fitted through as many points as it has parameters would interpolate, not fit
        fits = default is not None and design.distinct[get_law(default).inputs[0]] > len(
            get_law(default).param_names
        )
        if not fits or (laws is not None and default not in laws):
            raise UsageError(f"`law` auto needs enough runs to backtest: {need}; add runs or name a law")
        why = (
            f"too few runs to backtest ({need}), so no law was compared; {default} is the law for "
            f"{design.words.split(', ', 1)[1]} (docs/fitting.md, \"Which law for which data\")"
        )
        score = CandidateScore(default, 0, np.inf, (), None, None, 0, failed="not backtested")
        return LawChoice(default, 0, (score,), cutoffs, axis=axis, uncompared=why)
    laws = candidate_laws(table) if laws is None else tuple(laws)
    if not laws:
        raise UsageError(f"`law` auto: these runs identify no law ({design.words})")
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
    scores = tuple(ordered + failed)
    return LawChoice(best.law, best.drop_smallest, scores, cutoffs, axis=axis, kept_default=best is default)


def fit_auto(
    table: pd.DataFrame | str | Path,
    *,
    axis: str = "C",
    params_column: str = "N",
    loss: str = "huber",
    delta: float = HUBER_DELTA,
    **fit_options: Any,
) -> FitResult:
    """`--law auto`: fit the law, on the fit subset, that `choose_law` picks by a rolling backtest whose
    cut-offs cut `axis` ("C", compute in FLOPs, or "N", model size in params). The choice is recorded in
    `FitResult.selection`. params_column, loss and delta apply to the backtest's
    fits and the final one; `fit_options` (bootstrap, seed, method, procedure, base) to the final fit."""
    table = use_params_column(load_runs(table), params_column)
    choice = choose_law(table, axis=axis, loss=loss, delta=delta)
    result = fit(
        choice.fit_table(table), law=choice.law, params_column=params_column, loss=loss, delta=delta,
        **fit_options,
    )
    return replace(result, selection=choice)
