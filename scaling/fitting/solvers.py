"""How the optimum of an objective (`scaling.fitting.objective.Problem`) is found.

Instead of 4500 blind L-BFGS starts:
1. profile search: for fixed exponents the Chinchilla law is linear in (E, A, B), so a grid of exponents
   with a non-negative least-squares solve each gives good starts cheaply (`Law.starts`);
2. the best starts are refined with scipy's L-BFGS-B using exact analytic gradients;
3. a damped Newton polish with the exact gradient and Hessian of the summed Huber objective, which also
   certifies convergence: the Newton decrement (predicted further decrease) must be ~0.
Newton's method runs K problems at once (the bootstrap's resamples). Hoffmann et al.'s own procedure
(`classic_fit`, a 4500-start grid with finite differences) is kept for comparison.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from scaling.errors import UsageError
from scaling.fitting.laws import CHUNK_ELEMENTS, Inputs, chunks
from scaling.fitting.objective import Problem

# A global search on more runs than this gains nothing a random sample of them does not find (a law has
# at most 7 parameters); the optimum itself is always that of every run. Chinchilla's table has 245 runs.
SEARCH_ROWS = 10_000
CHINCHILLA_GRID = {  # Hoffmann et al.'s 4500 starting points, in the LSE parameterisation
    "alpha": np.arange(0.0, 2.01, 0.5),
    "beta": np.arange(0.0, 2.01, 0.5),
    "e": np.arange(-1.0, 1.01, 0.5),
    "a": np.arange(0.0, 25.01, 5.0),
    "b": np.arange(0.0, 25.01, 5.0),
}


def single_threaded_blas(func: Callable) -> Callable:
    """Run `func` with BLAS on one thread: its matrices are tiny (p x p, p <= 7), and BLAS threads
    spinning for them made fits 10x slower on a busy machine."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


def _newton_step(theta, g, H, damping, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton steps for K problems (theta (K, p)) and their Newton decrements g' H^-1 g / 2.
    Parameters at a bound with the gradient pushing outwards are held fixed; an indefinite Hessian is
    made positive by taking absolute eigenvalues; damping is Levenberg-Marquardt's, scaled by diag(H)."""
    p = theta.shape[-1]
    active = ((theta <= lo) & (g > 0)) | ((theta >= hi) & (g < 0))
    g_free = np.where(active, 0.0, g)
    free = ~active
    H_free = H * free[:, :, None] * free[:, None, :] + np.eye(p) * active[:, :, None]
    vals, vecs = np.linalg.eigh(H_free)
    floor = 1e-12 * np.maximum(np.abs(vals).max(-1, keepdims=True), 1e-300)
    scale = np.abs(np.einsum("kii->ki", H_free)) + floor
    H_pd = np.einsum("kij,kj,klj->kil", vecs, np.maximum(np.abs(vals), floor), vecs)
    H_pd += damping[:, None, None] * np.eye(p) * scale[:, None]
    step = -np.linalg.solve(H_pd, g_free[..., None])[..., 0]
    return step, -0.5 * (g_free * step).sum(-1)


def relative_decrement(problem: Problem, theta: np.ndarray) -> float:
    """The decrease a full Newton step from theta predicts, as a fraction of the objective."""
    lo, hi = problem.law.theta_bounds()
    f, g, H = problem.value_grad_hess(theta[None], np.array([0]))
    if not (np.isfinite(g).all() and np.isfinite(H).all()):
        return math.inf  # derivatives overflow there: no Newton step to measure
    _, decrement = _newton_step(theta[None], g, H, np.zeros(1), lo, hi)
    return float(decrement[0] / max(f[0], 1e-300))


def newton(problem: Problem, theta0: np.ndarray, max_iter: int = 200, tol: float = 1e-12, chunk: int = 500):
    """Damped Newton on K problems at once (theta0 (K, p)); bounds by projection (bound-active
    parameters are held fixed). Returns (theta, objective, converged) with leading dimension K.

    Converged means the Newton decrement g' H^-1 g / 2 (the decrease a further step would bring) is below
    tol * objective: a certified stationary point, not just a stalled optimiser."""
    lo, hi = problem.law.theta_bounds()
    theta = np.clip(np.array(theta0, dtype=float, ndmin=2), lo, hi)
    K, p = theta.shape
    chunk = max(1, min(chunk, CHUNK_ELEMENTS // (problem.y.size * p)))  # Jacobians (chunk, n, p) stay small
    fval = np.full(K, np.inf)
    done = np.zeros(K, dtype=bool)
    g, H = np.zeros((K, p)), np.zeros((K, p, p))
    floor = 1e-12 * problem.y.size  # an objective this small is a perfect fit (rms log residual ~ 1e-6)
    damping = np.full(K, 1e-6)
    for start in range(0, K, chunk):
        live = np.arange(start, min(start + chunk, K))  # problems still iterating
        fval[live], g[live], H[live] = problem.value_grad_hess(theta[live], live)
        for _ in range(max_iter):
            # a gradient or Hessian that overflowed gives no step (eigh fails on it): such a problem stops
            live = live[np.isfinite(g[live]).all(-1) & np.isfinite(H[live]).all((-2, -1))]
            if live.size == 0:
                break
            step, decrement = _newton_step(theta[live], g[live], H[live], damping[live], lo, hi)
            ok = np.isfinite(fval[live]) & (decrement <= tol * np.maximum(np.abs(fval[live]), floor))
            done[live[ok]] = True
            keep = ~ok & (damping[live] < 1e12)  # beyond that damping no step can lower the objective
            live, step = live[keep], step[keep]
            if live.size == 0:
                break
            trial = np.clip(theta[live] + step, lo, hi)
            accept = problem.objective(trial, live) <= fval[live]
            theta[live[accept]] = trial[accept]
            damping[live] = np.where(accept, np.maximum(damping[live] / 4, 1e-9), damping[live] * 8)
            moved = live[accept]
            if moved.size:
                fval[moved], g[moved], H[moved] = problem.value_grad_hess(theta[moved], moved)
    return theta, fval, done


def lbfgs(problem: Problem, theta0: np.ndarray) -> tuple[np.ndarray, float]:
    """scipy's L-BFGS-B with the exact gradient and tolerances tight enough to reach the optimum."""
    lo, hi = problem.law.theta_bounds()

    def fun(theta):
        f, g = problem.value_grad(theta)  # weights (1, n) give shapes (1,) and (1, p)
        f = float(np.sum(f))
        if not np.isfinite(f):
            return 1e300, np.zeros_like(theta)
        return f, np.reshape(g, -1)

    result = optimize.minimize(
        fun,
        np.clip(theta0, lo, hi),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12},
    )
    return result.x, float(result.fun)


def _search_problem(problem: Problem) -> Problem:
    """`problem` on at most SEARCH_ROWS of its runs, drawn at random (seeded, so fits are reproducible;
    random, so runs logged at a fixed period are not aliased); `problem` itself when it is that small."""
    n = problem.y.size
    if n <= SEARCH_ROWS:
        return problem
    rows = np.sort(np.random.default_rng(0).choice(n, SEARCH_ROWS, replace=False))
    X = problem.X
    sample = Inputs.make(*(None if v is None else v[rows] for v in (X.N, X.D, X.C, X.U)))
    return Problem(problem.law, sample, problem.y[rows], problem.loss, problem.delta)


def global_fit(problem: Problem, n_refine: int = 8) -> tuple[np.ndarray, float, bool]:
    """Profile starts -> L-BFGS-B (exact gradient) on the best few -> Newton polish of the best.

    On a table of more than SEARCH_ROWS runs (learning curves of many runs) the search (starts and
    L-BFGS-B) runs on a sample of SEARCH_ROWS of them and Newton's method takes its candidates to the
    optimum of all runs (L-BFGS-B on all runs first where Newton alone does not converge); the starts are
    evaluated CHUNK_ELEMENTS numbers at a time, so memory stays linear in the runs."""
    law = problem.law
    lo, hi = law.theta_bounds()
    search = _search_problem(problem)
    starts = np.clip(law.starts(search.X, np.exp(search.y)), lo, hi)
    f0 = np.concatenate([search.objective(starts[part]) for part in chunks(len(starts), search.y.size)])
    order = np.argsort(f0)[: max(n_refine, 1)]
    refined = [lbfgs(search, starts[i]) for i in order if np.isfinite(f0[i])]
    if not refined:
        raise UsageError(f"law {law.name}: no starting point gives a finite prediction for these runs")
    candidates = np.array([theta for theta, _ in refined])
    theta, fval, ok = newton(problem, candidates)
    best = int(np.argmin(fval))
    if search is not problem and not ok[best]:
        start, _ = lbfgs(problem, theta[best])
        theta, fval, ok = newton(problem, start[None])
        best = 0
    return theta[best], float(fval[best]), bool(ok[best])


# ---- Hoffmann et al.'s procedure, for comparison ---------------------------------------------------
def classic_starts() -> np.ndarray:
    """Chinchilla's 4500 starting points as thetas (e, a, b, alpha, beta)."""
    g = CHINCHILLA_GRID
    mesh = np.meshgrid(g["e"], g["a"], g["b"], g["alpha"], g["beta"], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def classic_single(problem: Problem, start: np.ndarray) -> tuple[np.ndarray, float]:
    """One classic fit: scipy L-BFGS-B, no bounds, finite-difference gradients, default tolerances."""
    result = optimize.minimize(lambda t: float(problem.objective(t)), start, method="L-BFGS-B")
    return result.x, float(result.fun)


@single_threaded_blas
def classic_fit(problem: Problem, starts: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Best of classic single fits from every start (all 4500 by default: minutes)."""
    starts = classic_starts() if starts is None else starts
    best_theta, best_f = starts[0], math.inf
    with np.errstate(all="ignore"):
        for start in starts:
            theta, f = classic_single(problem, start)
            if np.isfinite(f) and f < best_f:
                best_theta, best_f = theta, f
    return best_theta, best_f
