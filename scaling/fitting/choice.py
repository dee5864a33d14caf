"""The result of a law choice by rolling backtest (`scaling.fitting.select`): every candidate's score
(`CandidateScore`) and the choice (`LawChoice`, recorded in `FitResult.selection`).

Units: errors are fractions of the loss (nats/token); cut-offs in C FLOPs or N params.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

import pandas as pd

from scaling.errors import UsageError
from scaling.fitting.data import AXIS_UNITS, AXIS_WORDS, drop_smallest_sizes

FORMAT = "scaling.law_choice/1"
DEFAULT_CANDIDATE = ("chinchilla", 0)  # (law, smallest sizes dropped) kept unless clearly beaten


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's rolling backtest. rolling_error: mean over folds of the mean |relative error| of
    the predicted loss of the held-out runs; fold_errors: that per fold (lowest cut-off first);
    coverage_run / coverage_mean: fraction of all held-out predictions inside the 95 % prediction interval
    of one run / the interval of the mean law; extrapolation_rate: the rate of the log errors per e-fold
    beyond each fold's fitted runs (`scaling.fitting.intervals.extrapolation_rate`, behind the chosen
    law's prediction intervals) over `extrapolation_points` predictions. `failed` says why a candidate has
    no score."""

    law: str
    drop_smallest: int
    rolling_error: float
    fold_errors: tuple[float, ...]
    coverage_run: float | None
    coverage_mean: float | None
    n_predictions: int
    _: KW_ONLY
    failed: str | None = None
    extrapolation_rate: float | None = None
    extrapolation_points: int = 0

    @property
    def subset(self) -> str:
        return subset_name(self.drop_smallest)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "fold_errors": list(self.fold_errors), "subset": self.subset}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CandidateScore:
        return cls(
            law=str(obj["law"]),
            drop_smallest=int(obj["drop_smallest"]),
            rolling_error=float(obj["rolling_error"]),
            fold_errors=tuple(float(e) for e in obj["fold_errors"]),
            coverage_run=None if obj.get("coverage_run") is None else float(obj["coverage_run"]),
            coverage_mean=None if obj.get("coverage_mean") is None else float(obj["coverage_mean"]),
            n_predictions=int(obj["n_predictions"]),
            failed=None if obj.get("failed") is None else str(obj["failed"]),
            extrapolation_rate=None if obj.get("extrapolation_rate") is None
            else float(obj["extrapolation_rate"]),
            extrapolation_points=int(obj.get("extrapolation_points", 0)),
        )

    def describe(self) -> str:
        if self.failed:
            return f"{self.law} ({self.subset}): not scored: {self.failed}"
        return (
            f"{self.law} ({self.subset}): rolling error {self.rolling_error:.2%} over "
            f"{len(self.fold_errors)} folds, {self.n_predictions} predictions; "
            f"95 % PI coverage {_pct(self.coverage_run)}, mean-law coverage {_pct(self.coverage_mean)}"
        )


def subset_name(drop_smallest: int) -> str:
    if drop_smallest == 0:
        return "all runs"
    return f"without the {drop_smallest} smallest model size" + ("s" if drop_smallest > 1 else "")


@dataclass(frozen=True)
class LawChoice:
    """The chosen law and fit subset, with every candidate's score (the chosen first, then by rolling
    error, failed ones last), the cut-offs of the folds and whether the default was kept. `uncompared`
    says why no law was compared, when the runs were too few to backtest and their design left one law
    (`Design.default_law`): then `scores` holds that law alone, not scored."""

    law: str
    drop_smallest: int
    scores: tuple[CandidateScore, ...]
    cutoffs: tuple[float, ...]
    _: KW_ONLY
    axis: str = "C"
    kept_default: bool = False
    uncompared: str | None = None

    @property
    def subset(self) -> str:
        return subset_name(self.drop_smallest)

    @property
    def best(self) -> CandidateScore:
        """The chosen candidate's score."""
        return self.scores[0]

    @property
    def runner_up(self) -> CandidateScore | None:
        """The best candidate of another law (a different subset of the same law is no alternative)."""
        others = [s for s in self.scores if s.failed is None and s.law != self.law]
        return others[0] if others else None

    @property
    def default(self) -> CandidateScore | None:
        """The default candidate's score (`DEFAULT_CANDIDATE`), None when it was no candidate."""
        return next((s for s in self.scores if (s.law, s.drop_smallest) == DEFAULT_CANDIDATE), None)

    def fit_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """The runs the chosen law is fitted on."""
        return drop_smallest_sizes(table, self.drop_smallest)

    @property
    def reason(self) -> str:
        best, other = self.best, self.runner_up
        if self.uncompared is not None:
            return f"law {best.law} fitted on {best.subset} without a comparison: {self.uncompared}"
        folds = f"over {len(self.cutoffs)} {AXIS_WORDS[self.axis]} cut-offs"
        if self.kept_default:
            text = (
                f"law {best.law} fitted on {best.subset}, the default, kept: rolling-backtest error "
                f"{best.rolling_error:.2%} of the loss {folds}, and no other candidate was lower by more "
                "than the standard error of its fold-by-fold difference"
            )
        else:
            default = self.default
            if default is None:
                compared = (
                    f"the lowest of the candidates; the default {DEFAULT_CANDIDATE[0]} was no candidate "
                    "(these runs do not identify it)"
                )
            elif default.failed is not None or not default.fold_errors:
                compared = f"the lowest of the candidates; the default {default.law} was not scored"
            elif not all(math.isfinite(e) for e in default.fold_errors):
                failed = sum(not math.isfinite(e) for e in default.fold_errors)
                compared = (
                    f"the lowest of the candidates; the default {default.law} could not predict "
                    f"{failed} of its {len(default.fold_errors)} folds"
                )
            else:
                compared = (
                    "clearly below the default's (by more than the standard error of the fold-by-fold "
                    "difference)"
                )
            text = (
                f"law {best.law} fitted on {best.subset}: rolling-backtest error {best.rolling_error:.2%} of "
                f"the loss {folds}, {compared}"
            )
        if other is not None:
            text += f"; runner-up {other.law} ({other.subset}) {other.rolling_error:.2%}"
        return text

    def describe(self) -> str:
        """The table law x fit subset x rolling error x interval coverage, and the choice (what
        `scaling fit --law auto` prints)."""
        cuts, axis = self.cutoffs, self.axis
        if self.uncompared is not None:
            return f"chosen: {self.reason}"
        lines = [
            f"law choice by rolling backtest: fit on the runs with {axis} <= each of {len(cuts)} cut-offs "
            f"({', '.join(f'{c:.3g}' for c in cuts)} {AXIS_UNITS[axis]}), predict the runs above",
            f"  {'law':<18s} {'fit subset':<36s} {'rolling error':>13s} {'95 % PI cover':>13s} "
            f"{'mean-law cover':>14s}",
        ]
        for s in self.scores:
            if s.failed:
                lines.append(f"  {s.law:<18s} {s.subset:<36s} not scored: {s.failed}")
                continue
            lines.append(
                f"  {s.law:<18s} {s.subset:<36s} {s.rolling_error:13.2%} {_pct(s.coverage_run):>13s} "
                f"{_pct(s.coverage_mean):>14s}"
            )
        lines.append(f"chosen: {self.reason}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"LawChoice(law={self.law!r}, subset={self.subset!r}, "
            f"rolling_error={self.best.rolling_error:.4g}, candidates={len(self.scores)}, "
            f"kept_default={self.kept_default})"
        )

    def to_json(self) -> dict[str, Any]:
        runner = self.runner_up
        return {
            "format": FORMAT,
            "law": self.law,
            "subset": self.subset,
            "drop_smallest": self.drop_smallest,
            "rolling_error": self.best.rolling_error,
            "runner_up": None if runner is None else {"law": runner.law, "subset": runner.subset,
                                                      "rolling_error": runner.rolling_error},
            "reason": self.reason,
            "kept_default": self.kept_default,
            "axis": self.axis,
            "cutoffs": list(self.cutoffs),
            "scores": [s.to_json() for s in self.scores],
            "uncompared": self.uncompared,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LawChoice:
        """Inverse of to_json (the derived entries, reason and runner-up, are derived again)."""
        try:
            return cls(
                law=str(obj["law"]),
                drop_smallest=int(obj["drop_smallest"]),
                scores=tuple(CandidateScore.from_json(s) for s in obj["scores"]),
                cutoffs=tuple(float(c) for c in obj["cutoffs"]),
                axis=str(obj.get("axis", "C")),
                kept_default=bool(obj.get("kept_default", False)),
                uncompared=None if obj.get("uncompared") is None else str(obj["uncompared"]),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UsageError(f"malformed law choice: {exc}") from None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
