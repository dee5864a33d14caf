"""The bootstrap of a fit: resamples of the runs as integer weights, refitted all at once by Newton's method
warm-started from the full-data optimum, and the 95 % intervals they give.

Units: parameters in natural units (`Law.natural`).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning
from scaling.fitting.data import prepare_runs
from scaling.fitting.intervals import interval_dict
from scaling.fitting.laws import Law, get_law
from scaling.fitting.objective import Problem
from scaling.fitting.result import FitResult
from scaling.fitting.solvers import lbfgs, newton


def bootstrap_weights(points: int, n: int, seed: int) -> np.ndarray:
    """(n, points) resampling counts: `n` resamples of `points` runs with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(points, np.full(points, 1.0 / points), size=n).astype(float)


def refit_weighted(
    problem: Problem, weights: np.ndarray, theta0: np.ndarray, refine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Refit `problem` under each row of `weights` (K, n), warm-started at the rows of `theta0` (K, p);
    refine=False skips the full refit of a row whose batch Newton run did not converge.
    Returns (thetas (K, p), converged (K,))."""
    batch = Problem(problem.law, problem.X, problem.y, problem.loss, problem.delta, weights)
    thetas, _, ok = newton(batch, theta0)
    # rare: a resample far from the full-data optimum gets a full refine
    for i in np.flatnonzero(~ok) if refine else ():
        single = Problem(problem.law, problem.X, problem.y, problem.loss, problem.delta, weights[i : i + 1])
        start, _ = lbfgs(single, theta0[i])
        refined, _, again = newton(single, start[None])
        thetas[i], ok[i] = refined[0], again[0]
    return thetas, ok


def refit_resamples(
    result: FitResult, table: pd.DataFrame, n: int, seed: int, refine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Refit `result`'s law (with its loss and delta) on `n` resamples of `table`, the runs it was fitted
    on, warm-started at its parameters: (thetas (n, p), converged (n,)) as `bootstrap_thetas` returns."""
    law = get_law(result.law)
    runs = prepare_runs(table, law)
    problem = Problem(law, runs.X, np.log(runs.loss), result.loss, result.delta)
    return bootstrap_thetas(problem, law.to_theta(result.params), n, seed, refine)


def bootstrap_thetas(
    problem: Problem, theta: np.ndarray, n: int, seed: int, refine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Refit `n` resamples of the runs (with replacement), warm-started at `theta`.
    Returns (thetas (n, p), converged (n,)). refine=False skips the full refit of a resample whose batch
    Newton run did not certify convergence (its theta is still descended from `theta`): the rolling
    backtests bootstrap every fold of every candidate law and cannot afford a second per such resample."""
    weights = bootstrap_weights(problem.y.size, n, seed)
    return refit_weighted(problem, weights, np.tile(theta, (n, 1)), refine)


def with_bootstrap(result: FitResult, law: Law, thetas: np.ndarray, ok: np.ndarray) -> FitResult:
    n = len(ok)
    failed = int((~ok).sum())
    if failed:
        warnings.warn(
            f"{failed} of {n} bootstrap refits did not converge; intervals use the other {n - failed}",
            ScalingWarning,
            stacklevel=3,
        )
    natural = law.natural(thetas[ok])
    ci = interval_dict(natural, law.param_names)
    optimal = law.bootstrap_optimal(natural) if result.identifies_allocation else None
    if optimal is not None:
        ci.update(interval_dict(np.column_stack([optimal.a, optimal.b, optimal.G]), ("a", "b", "G")))
    return replace(
        result, ci=ci, bootstrap_params=natural, bootstrap_optimal=optimal, n_bootstrap_failed=failed
    )
