"""Percentile intervals of bootstrap samples (`percentile_interval`, the one home of that computation), and
two 95 % intervals of a predicted loss, kept apart.

- The interval of the mean law (`mean`): where the law itself lies, from the bootstrap of the fit (the
  spread of the predictions of the refitted resamples). It shrinks as runs are added.
- The prediction interval of one run's loss (`run`): where the loss of one new training run lands. It adds
  the run-to-run noise (seeds, data order, evaluation noise), estimated from the fit's residuals: the
  standard deviation `noise_sigma` of log(loss) - log(prediction) with the degrees of freedom of the fit,
  drawn from Student's t so that a noise scale estimated from few runs widens the interval; and, beyond
  the fitted runs, the error of the law's shape in extrapolation (`extrapolation_scale`), which no
  bootstrap of a few runs sees.

An observed run is compared with the prediction interval; the true law with the interval of the mean.
Neither is given when it would not mean what it says: when too many bootstrap refits failed
(`FitResult.bootstrap_unreliable`), and at a point whose interval from the refits does not contain the
fit's own prediction (the refits then describe another optimum than the fit's, as when the runs do not
determine the law): there the interval is NaN and `note` says why.
Units: loss in nats/token, N params, D tokens, C FLOPs, U unique tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from scaling.fitting.laws import Inputs
from scaling.fitting.result import FitResult

LEVEL = 0.95
NOISE_SEED = 0  # the noise draws added to the bootstrap predictions: fixed, so intervals are reproducible
NOISE_DRAWS = 4000  # noisy draws behind a prediction interval, whatever the number of bootstrap resamples
# The extrapolation error of a fitted law, as a standard deviation of log(loss) per e-fold beyond the
# fitted runs (`reach`): a prior rate, pooled with the rate the fit's own rolling backtest measured (an
# auto fit's `selection`) as a scaled-inverse-chi^2 prior worth EXTRAPOLATION_PRIOR_WEIGHT held-out
# predictions. Why 0.01: the rates auto's rolling backtests measure are 0.0018-0.083 on the published one-axis
# families of bench/one_axis.py (median 0.0083; the largest on Porian et al.'s one-N families) and
# 0.011-0.023 on the grids of bench/extrapolation.py (compute cut-offs); 0.01 lies between. Why 4: a family
# of five or six sizes gives about three held-out predictions, so the prior outweighs them, and a grid's
# forty outweigh the prior. Coverage and widths: docs/results.md ("One-axis families").
EXTRAPOLATION_RATE = 0.01
EXTRAPOLATION_PRIOR_WEIGHT = 4


def percentile_interval(samples: ArrayLike, level: float = LEVEL, axis: int | None = 0) -> np.ndarray:
    """The central `level` percentile interval of `samples` along `axis`: [lo, hi] stacked on a new first
    axis (bootstrap samples on `axis`; None flattens). Non-finite samples (a resample whose prediction
    overflowed) are left out; NaN where none is left."""
    tail = 100 * (1 - level) / 2
    samples = np.asarray(samples, dtype=float)
    finite = np.isfinite(samples)
    if finite.all():
        return np.percentile(samples, [tail, 100 - tail], axis=axis)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its interval is NaN
        return np.nanpercentile(np.where(finite, samples, np.nan), [tail, 100 - tail], axis=axis)


def interval_dict(
    samples: np.ndarray, names: Sequence[str], level: float = LEVEL
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the columns of `samples` (K, len(names)), by name."""
    lo, hi = percentile_interval(samples, level)
    return {k: (float(a), float(b)) for k, a, b in zip(names, lo, hi, strict=True)}


def noise_sigma(log_residuals: np.ndarray, n_params: int) -> float | None:
    """Run-to-run noise of log(loss): sqrt(sum r^2 / (n - p)); None when the fit has no residual freedom."""
    dof = log_residuals.size - n_params
    if dof < 1:
        return None
    return float(np.sqrt(np.sum(log_residuals**2) / dof))


def reach(data_range: dict[str, tuple[float, float]] | None, N: ArrayLike, D: ArrayLike) -> np.ndarray:
    """e-folds beyond the fitted runs at N params, D tokens: log(N / largest N) where positive plus
    log(D / largest D) where positive (the e-folds of compute beyond the largest run, for a family that
    grows N and D together); 0 inside the fitted range or without one. An axis given as None (a law of
    N alone asked at N only) adds nothing."""
    given = {k: np.atleast_1d(np.asarray(x, float)) for k, x in (("N", N), ("D", D)) if x is not None}
    zero = np.zeros(np.broadcast_shapes(*(x.shape for x in given.values())) if given else 1)
    if data_range is None:
        return zero
    return sum((np.maximum(0.0, np.log(x / data_range[k][1])) for k, x in given.items()), zero)


def extrapolation_rate(errors: ArrayLike, reaches: ArrayLike) -> tuple[float | None, int]:
    """The rate of the log errors `errors` of predictions made `reaches` e-folds beyond their fit:
    sqrt(sum e^2 / sum reach^2) over the predictions beyond it (reach > 0) with finite errors, and their
    count; (None, 0) without any."""
    e, r = np.asarray(errors, float), np.asarray(reaches, float)
    used = (r > 0) & np.isfinite(e)
    if not used.any():
        return None, 0
    return float(np.sqrt(np.sum(e[used] ** 2) / np.sum(r[used] ** 2))), int(used.sum())


def extrapolation_scale(fit_result: FitResult) -> tuple[float, int]:
    """(rate, degrees of freedom) of the extrapolation error of `fit_result`: EXTRAPOLATION_RATE pooled
    with the rate its law choice's rolling backtest measured, if any (see the constants)."""
    best = None if fit_result.selection is None else fit_result.selection.best
    own, m = (None, 0) if best is None else (best.extrapolation_rate, best.extrapolation_points)
    m = m if own is not None else 0
    w = EXTRAPOLATION_PRIOR_WEIGHT
    rate_sq = (m * (own or 0.0) ** 2 + w * EXTRAPOLATION_RATE**2) / (m + w)
    return float(np.sqrt(rate_sq)), m + w


@dataclass(frozen=True)
class LossIntervals:
    """95 % intervals of the loss (nats/token) at n points: `mean_lo/hi` the mean law (None without a
    bootstrap), `run_lo/hi` one run's loss (None when the fit has no noise estimate); NaN at a point
    whose interval would exclude the point prediction. `note` says why an interval is missing, if one is."""

    mean_lo: np.ndarray | None
    mean_hi: np.ndarray | None
    run_lo: np.ndarray | None
    run_hi: np.ndarray | None
    note: str | None = None


EXCLUDES_POINT = (
    "the bootstrap refits do not surround the fit's own prediction there (they settle elsewhere: "
    "these runs do not determine the law at that point)"
)


def _containing(point: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(lo, hi) with NaN where [lo, hi] does not contain `point` (all logs), and whether any did not."""
    slack = 1e-9 * np.maximum(1.0, np.abs(point))  # rounding, not a real miss
    outside = (point < lo - slack) | (point > hi + slack)
    return np.where(outside, np.nan, lo), np.where(outside, np.nan, hi), bool(outside.any())


def loss_intervals(
    fit_result: FitResult,
    *,
    N: ArrayLike | None = None,
    D: ArrayLike | None = None,
    C: ArrayLike | None = None,
    U: ArrayLike | None = None,
    level: float = LEVEL,
    extrapolation: bool = True,
) -> LossIntervals:
    """Both intervals of `fit_result` (a FitResult) at N params, D tokens (or C FLOPs), U unique tokens;
    extrapolation=False leaves the extrapolation error out of the prediction interval (the bootstrap and
    the noise alone: the benchmarks compare both)."""
    point = np.log(np.atleast_1d(fit_result.predict(N=N, D=D, C=C, U=U)))
    sigma = fit_result.noise_sigma
    dof = fit_result.n_points - len(fit_result.param_names)
    unreliable = fit_result.bootstrap_unreliable
    if unreliable:
        return LossIntervals(None, None, None, None, note=unreliable)
    boot = fit_result.bootstrap_predict(N=N, D=D, C=C, U=U)
    inputs = Inputs.make(N, D, C, U)
    beyond = reach(fit_result.data_range, inputs.N, inputs.D) if inputs.N is not None else 0 * point
    rate, rate_dof = extrapolation_scale(fit_result) if extrapolation else (0.0, 1)
    rng = np.random.default_rng(NOISE_SEED)
    mean_lo = mean_hi = run_lo = run_hi = None
    laws = point[None]  # without a bootstrap: the fitted law alone
    if boot is not None and len(boot) >= 2:
        log_boot = np.log(boot)
        log_boot = log_boot[np.isfinite(log_boot).all(axis=1)]
        if len(log_boot) >= 2:
            mean_lo, mean_hi = percentile_interval(log_boot, level)
            laws = log_boot
    if sigma is not None and dof >= 1:
        # each law plus one run's noise and the law's extrapolation error (several draws each, so that
        # the tails of a small bootstrap are still resolved): the spread of a new run's loss
        reps = -(-NOISE_DRAWS // len(laws))
        size = (len(laws) * reps, 1)
        samples = (
            np.repeat(laws, reps, axis=0)
            + sigma * rng.standard_t(dof, size=size)
            + rate * beyond * rng.standard_t(rate_dof, size=size)
        )
        run_lo, run_hi = percentile_interval(samples, level)
    missed = False
    if mean_lo is not None:
        mean_lo, mean_hi, missed = _containing(point, mean_lo, mean_hi)
    if run_lo is not None:
        run_lo, run_hi, missed_run = _containing(point, run_lo, run_hi)
        missed |= missed_run
    bands = [None if x is None else np.exp(x) for x in (mean_lo, mean_hi, run_lo, run_hi)]
    return LossIntervals(*bands, note=EXCLUDES_POINT if missed else None)
