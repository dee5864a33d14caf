"""Robust fitting of scaling laws: global search, exact optimum, bootstrap, likelihood-ratio test, backtest.

The objective is Chinchilla's (Hoffmann et al. 2022): the Huber loss (delta = 1e-3) of
log(loss) - log(prediction), SUMMED over runs (averaging makes the optimiser's tolerances 240x looser
and is what stopped the original fit early; Besiroglu et al. 2024).

How the optimum is found, instead of 4500 blind L-BFGS starts:
1. profile search: for fixed exponents the Chinchilla law is linear in (E, A, B), so a grid of exponents
   with a non-negative least-squares solve each gives good starts cheaply (`Law.starts`);
2. the best starts are refined with scipy's L-BFGS-B using exact analytic gradients;
3. a damped Newton polish with the exact gradient and Hessian of the summed Huber objective, which also
   certifies convergence: the Newton decrement (predicted further decrease) must be ~0.
The bootstrap refits every resample with that Newton method, all resamples at once as one batch of
numpy arrays (resampling = integer weights on the runs), warm-started from the full-data optimum.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import threadpool_limits

from scaling.defaults import HOLDOUT_TOP, HUBER_DELTA, METHODS
from scaling.errors import NON_NEGATIVE, Constraint, ScalingWarning, UsageError, checked, one_of
from scaling.fitting.intervals import noise_sigma
from scaling.fitting.laws import (
    CHUNK_ELEMENTS,
    Frozen,
    Inputs,
    Law,
    chunks,
    get_law,
    weighted_gram,
    weighted_sum,
)
from scaling.io import atomic_write_json
from scaling.runs.table import compute_frontier, load_runs

# A global search on more runs than this gains nothing a random sample of them does not find (a law has
# at most 7 parameters); the optimum itself is always that of every run. Chinchilla's table has 245 runs.
SEARCH_ROWS = 10_000
LOSSES = ("huber", "squared")
# `--law auto`: the law with the lowest rolling-backtest error (scaling.fitting.select.fit_auto)
AUTO = "auto"
PARAMS_COLUMNS = ("N", "N_total")  # which parameter count feeds the law: non-embedding or all parameters
CI_LEVEL = 0.95
FORMAT = "scaling.fit/1"
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


# ---- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitStage:
    """One stage of a staged fit: the parameters it fitted (the others held fixed) on which runs.
    `rows` are 0-based positions in the fitted run table, in its order."""

    name: str
    fitted: tuple[str, ...]
    rows: tuple[int, ...]
    rule: str
    objective: float
    converged: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "fitted": list(self.fitted),
            "rows": list(self.rows),
            "n_points": len(self.rows),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FitStage:
        return cls(
            name=str(obj["name"]),
            fitted=tuple(str(k) for k in obj["fitted"]),
            rows=tuple(int(i) for i in obj["rows"]),
            rule=str(obj["rule"]),
            objective=float(obj["objective"]),
            converged=bool(obj["converged"]),
        )


@dataclass(frozen=True)
class FitResult:
    """A fitted law. `params` in natural units (e.g. E in nats/token, A and B such that A/N^alpha is in
    nats/token); `objective` is the summed loss of log residuals (Chinchilla's for `loss="huber"`);
    `ci` holds 95 % bootstrap intervals for every parameter and, for laws in N and D, for a, b and G of
    `compute_optimal` (N_opt = G (C/6)^a params, D_opt = (1/G) (C/6)^b tokens)."""

    law: str
    params: dict[str, float]
    objective: float
    n_points: int
    converged: bool
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    compute_optimal: dict[str, float] | None = None
    bootstrap_params: np.ndarray | None = None  # (K, len(param_names)), natural units
    message: str = ""
    method: str = "profile"
    loss: str = "huber"
    delta: float = HUBER_DELTA
    n_bootstrap_failed: int = 0
    data_range: dict[str, tuple[float, float]] | None = None  # {"N": (min, max), "D": ..., "C": ...} fitted
    procedure: str = "joint"  # one of the law's `procedures`; "two_stage" for data_constrained's default
    stages: tuple[FitStage, ...] = ()  # what each stage fitted on which runs (staged procedures only)
    # run-to-run noise of log(loss), from the residuals (scaling.fitting.intervals)
    noise_sigma: float | None = None
    params_column: str = "N"  # the parameter count the law reads: "N" (non-embedding) or "N_total"
    selection: dict[str, Any] | None = None  # from `select.fit_auto`: the rolling backtest behind the choice

    @property
    def param_names(self) -> tuple[str, ...]:
        return get_law(self.law).param_names

    def predict(self, N=None, D=None, C=None, U=None) -> np.ndarray:
        """Predicted loss (nats/token) at N params, D tokens, C FLOPs (any two), U unique tokens."""
        return get_law(self.law).predict(self.params, N=N, D=D, C=C, U=U)

    def bootstrap_predict(self, N=None, D=None, C=None, U=None) -> np.ndarray | None:
        """Predicted loss under every bootstrap parameter set: (K, n) nats/token, or None."""
        if self.bootstrap_params is None:
            return None
        law = get_law(self.law)
        theta = np.stack(
            [law.to_theta(dict(zip(law.param_names, row, strict=True))) for row in self.bootstrap_params]
        )
        return np.exp(law.log_predict(theta, Inputs.make(N, D, C, U)))

    def describe(self) -> str:
        """A readable table of the fit, every number with its unit."""
        law = get_law(self.law)
        objective = f"summed Huber (delta {self.delta:g})" if self.loss == "huber" else "summed 0.5 r^2"
        n_boot = 0 if self.bootstrap_params is None else len(self.bootstrap_params)
        lines = [
            f"law {law.name}: {law.formula}   (loss in nats/token, N params, D tokens, C FLOPs)",
            f"fitted on {self.n_points} runs; objective ({objective} of log residuals) "
            f"= {self.objective:.9g}",
            f"{'converged' if self.converged else 'NOT CONVERGED'}: {self.message}",
            *(
                f"  stage {i} ({st.name}): fitted {', '.join(st.fitted)} on {len(st.rows)} runs ({st.rule})"
                + (f"; objective {st.objective:.6g}" if math.isfinite(st.objective) else "")
                + ("" if st.converged else ", NOT CONVERGED")
                for i, st in enumerate(self.stages, 1)
            ),
            f"  {'parameter':<10s} {'value':>12s}   "
            + (f"95 % CI (bootstrap, {n_boot} resamples)" if n_boot else ""),
        ]
        for name in law.param_names:
            ci = self.ci.get(name)
            shown = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            lines.append(f"  {name:<10s} {self.params[name]:12.6g}   {shown:<24s} {law.units.get(name, '')}")
        if self.n_bootstrap_failed:
            lines.append(f"  ({self.n_bootstrap_failed} bootstrap refits did not converge and were left out)")
        if self.compute_optimal:
            o = self.compute_optimal
            lines.append(
                f"compute-optimal (Approach 3): N_opt = {o['G']:.4g} (C/6)^{o['a']:.4f} params, "
                f"D_opt = {1 / o['G']:.4g} (C/6)^{o['b']:.4f} tokens"
            )
            for k in ("a", "b"):
                if k in self.ci:
                    lines.append(f"  {k} = {o[k]:.4f}  95 % CI [{self.ci[k][0]:.4f}, {self.ci[k][1]:.4f}]")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "law": self.law,
            "params": dict(self.params),
            "objective": self.objective,
            "n_points": self.n_points,
            "converged": self.converged,
            "message": self.message,
            "method": self.method,
            "loss": self.loss,
            "delta": self.delta,
            "ci": {k: [lo, hi] for k, (lo, hi) in self.ci.items()},
            "compute_optimal": self.compute_optimal,
            "n_bootstrap_failed": self.n_bootstrap_failed,
            "data_range": None
            if self.data_range is None
            else {k: list(v) for k, v in self.data_range.items()},
            "bootstrap_params": None if self.bootstrap_params is None else self.bootstrap_params.tolist(),
            "procedure": self.procedure,
            "stages": [stage.to_json() for stage in self.stages],
            "noise_sigma": self.noise_sigma,
            "params_column": self.params_column,
            "selection": self.selection,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FitResult:
        """Inverse of to_json; UsageError when `obj` is not a fit of a known law."""
        if not isinstance(obj, Mapping) or "law" not in obj or "params" not in obj:
            raise UsageError(
                "not a fit result: expected a JSON object with 'law' and 'params' (from `scaling fit --json`)"
            )
        law = get_law(str(obj["law"]))
        params = obj["params"]
        if not isinstance(params, Mapping) or set(params) != set(law.param_names):
            raise UsageError(f"fit result for law {law.name} must have params {', '.join(law.param_names)}")
        try:
            values = {k: float(params[k]) for k in law.param_names}
            with np.errstate(all="ignore"):  # the log of a hand-edited negative scale is NaN: refused below
                theta = law.to_theta(values)
            bounds = law.theta_bounds()
            lo, hi = (law.natural(bound) for bound in bounds)
            for i, k in enumerate(law.param_names):
                if not bounds[0][i] <= theta[i] <= bounds[1][i]:
                    raise UsageError(
                        f"fit result for law {law.name} has {k}={values[k]:g}, outside the range a fit can "
                        f"give ({lo[i]:.3g} to {hi[i]:.3g})"
                    )
            boot = obj.get("bootstrap_params")
            boot = None if boot is None else np.asarray(boot, dtype=float).reshape(-1, len(law.param_names))
            ci = {str(k): (float(v[0]), float(v[1])) for k, v in (obj.get("ci") or {}).items()}
            optimal = obj.get("compute_optimal")
            optimal = None if optimal is None else {str(k): float(v) for k, v in optimal.items()}
            return cls(
                law=law.name,
                params=values,
                objective=float(obj.get("objective", math.nan)),
                n_points=int(obj.get("n_points", 0)),
                converged=bool(obj.get("converged", False)),
                ci=ci,
                compute_optimal=optimal,
                bootstrap_params=boot,
                message=str(obj.get("message", "")),
                method=str(obj.get("method", "profile")),
                loss=str(obj.get("loss", "huber")),
                delta=float(obj.get("delta", HUBER_DELTA)),
                n_bootstrap_failed=int(obj.get("n_bootstrap_failed", 0)),
                data_range=None
                if obj.get("data_range") is None
                else {str(k): (float(v[0]), float(v[1])) for k, v in obj["data_range"].items()},
                procedure=str(obj.get("procedure", "joint")),
                stages=tuple(FitStage.from_json(stage) for stage in obj.get("stages") or ()),
                noise_sigma=None if obj.get("noise_sigma") is None else float(obj["noise_sigma"]),
                params_column=_params_column(str(obj.get("params_column", "N"))),
                selection=obj.get("selection"),
            )
        except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
            raise UsageError(f"malformed fit result: {exc}") from None


def save_fit(result: FitResult, path: str | Path) -> None:
    """Write `result.to_json()` atomically (a reader never sees half a file)."""
    atomic_write_json(path, result.to_json())


def load_fit(path: str | Path) -> FitResult:
    """Read a fit written by `save_fit` / `scaling fit --json`; UsageError on anything else."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a fit result JSON ({exc})") from None
    return FitResult.from_json(obj)


# ---- the objective ---------------------------------------------------------------------------------
def _rho_value(r: np.ndarray, loss: str, delta: float) -> np.ndarray:
    """Loss of residuals r: 0.5 r^2, or Huber's m (|r| - m / 2) with m = min(|r|, delta) (few passes over
    r: a start search evaluates it on every run for hundreds of starts)."""
    if loss == "squared":
        return 0.5 * r * r
    size = np.abs(r)
    m = np.minimum(size, delta)
    return m * (size - 0.5 * m)


def _rho(r: np.ndarray, loss: str, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss of residuals r, its first derivative psi and second derivative (0 or 1)."""
    if loss == "squared":
        return _rho_value(r, loss, delta), r, np.ones_like(r)
    return _rho_value(r, loss, delta), np.clip(r, -delta, delta), (np.abs(r) <= delta).astype(float)


@dataclass(frozen=True)
class _Problem:
    """Summed loss of log residuals of `law` on runs X with log losses y; `weights` (K, n) makes K
    problems at once (bootstrap resampling counts)."""

    law: Law
    X: Inputs
    y: np.ndarray
    loss: str = "huber"
    delta: float = HUBER_DELTA
    weights: np.ndarray | None = None

    def _w(self, rows):
        if self.weights is None:
            return 1.0
        return self.weights if rows is None else self.weights[rows]

    # Trial points of the optimisers may overflow; the objective is then inf and the point rejected.
    @np.errstate(all="ignore")
    def objective(self, theta: np.ndarray, rows=None) -> np.ndarray:
        r = self.y - self.law.log_predict(theta, self.X)
        value = (self._w(rows) * _rho_value(r, self.loss, self.delta)).sum(-1)
        return np.where(np.isfinite(value), value, np.inf)

    @np.errstate(all="ignore")
    def value_grad(self, theta: np.ndarray, rows=None) -> tuple[np.ndarray, np.ndarray]:
        logp, jac = self.law.jacobian(theta, self.X)
        value, psi, _ = _rho(self.y - logp, self.loss, self.delta)
        w = self._w(rows)
        return (w * value).sum(-1), -weighted_sum(w * psi, jac)

    @np.errstate(all="ignore")
    def value_grad_hess(self, theta: np.ndarray, rows=None):
        logp, jac = self.law.jacobian(theta, self.X)
        value, psi, curvature = _rho(self.y - logp, self.loss, self.delta)
        w = self._w(rows) * np.ones_like(logp)
        hess = weighted_gram(w * curvature, jac)
        hess += self.law.weighted_hessian(theta, self.X, -w * psi, jac)
        return (w * value).sum(-1), -weighted_sum(w * psi, jac), hess


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


def _relative_decrement(problem: _Problem, theta: np.ndarray) -> float:
    """The decrease a full Newton step from theta predicts, as a fraction of the objective."""
    lo, hi = problem.law.theta_bounds()
    f, g, H = problem.value_grad_hess(theta[None], np.array([0]))
    if not (np.isfinite(g).all() and np.isfinite(H).all()):
        return math.inf  # derivatives overflow there: no Newton step to measure
    _, decrement = _newton_step(theta[None], g, H, np.zeros(1), lo, hi)
    return float(decrement[0] / max(f[0], 1e-300))


def _newton(problem: _Problem, theta0: np.ndarray, max_iter: int = 200, tol: float = 1e-12, chunk: int = 500):
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


def _lbfgs(problem: _Problem, theta0: np.ndarray) -> tuple[np.ndarray, float]:
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


def _search_problem(problem: _Problem) -> _Problem:
    """`problem` on at most SEARCH_ROWS of its runs, drawn at random (seeded, so fits are reproducible;
    random, so runs logged at a fixed period are not aliased); `problem` itself when it is that small."""
    n = problem.y.size
    if n <= SEARCH_ROWS:
        return problem
    rows = np.sort(np.random.default_rng(0).choice(n, SEARCH_ROWS, replace=False))
    X = problem.X
    sample = Inputs.make(*(None if v is None else v[rows] for v in (X.N, X.D, X.C, X.U)))
    return _Problem(problem.law, sample, problem.y[rows], problem.loss, problem.delta)


def _global_fit(problem: _Problem, n_refine: int = 8) -> tuple[np.ndarray, float, bool]:
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
    refined = [_lbfgs(search, starts[i]) for i in order if np.isfinite(f0[i])]
    if not refined:
        raise UsageError(f"law {law.name}: no starting point gives a finite prediction for these runs")
    candidates = np.array([theta for theta, _ in refined])
    theta, fval, ok = _newton(problem, candidates)
    best = int(np.argmin(fval))
    if search is not problem and not ok[best]:
        start, _ = _lbfgs(problem, theta[best])
        theta, fval, ok = _newton(problem, start[None])
        best = 0
    return theta[best], float(fval[best]), bool(ok[best])


# ---- fitting ---------------------------------------------------------------------------------------
def _params_column(name: str) -> str:
    if name not in PARAMS_COLUMNS:
        raise UsageError(f"`params_column` must be one of {', '.join(PARAMS_COLUMNS)}, got {name!r}")
    return name


def use_params_column(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The run table with the law's N taken from `column`: "N" (non-embedding parameters, as given) or
    "N_total" (all parameters, embeddings included; the table must carry it for every run). C is kept."""
    if _params_column(column) == "N":
        return table
    values = pd.to_numeric(table[column], errors="coerce") if column in table else None
    if values is None or not (np.isfinite(values) & (values > 0)).all():
        raise UsageError(
            f"`params_column` {column} needs a column {column} (all parameters, embeddings included) with a "
            "positive number for every run (`scaling runs` writes it; else rename a column to it with "
            "`column_map`)"
        )
    return table.assign(N=values.astype(float))


def _prepare(
    table: pd.DataFrame | str | Path, law: Law, params_column: str = "N"
) -> tuple[pd.DataFrame, Inputs, np.ndarray]:
    """Check the table can identify `law`; the runs it is fitted on (the frontier for kaplan_c), with N
    read from `params_column` (`use_params_column`)."""
    table = use_params_column(load_runs(table), params_column)
    if "U" in law.inputs and ("U" not in table or table["U"].isna().any()):
        raise UsageError(
            f"law {law.name} needs column U (unique tokens in the training data) for every run; "
            "rename a column to U with `column_map`, or use law chinchilla"
        )
    if law.name == "kaplan_c":
        table = compute_frontier(table)
    n, p = len(table), len(law.param_names)
    if n < p:
        raise UsageError(f"law {law.name} has {p} parameters but only {n} usable runs; give at least {p}")
    loss = table["loss"].to_numpy(float)
    if np.ptp(loss) <= 1e-12 * loss.max():
        raise UsageError(f"all {n} losses are equal ({loss[0]:.6g} nats/token): there is no trend to fit")
    X = Inputs.make(**{k: table[k].to_numpy(float) for k in ("N", "D", "C", "U") if k in table})
    law.check_data(X)
    if n == p:
        warnings.warn(
            f"law {law.name}: as many runs as parameters ({n}); the fit interpolates and cannot test the law",
            ScalingWarning,
            stacklevel=3,
        )
    return table, X, loss


@single_threaded_blas
@checked(
    loss=one_of(LOSSES),
    delta=Constraint(lambda v: math.isfinite(v) and v > 0, "must be a positive number"),
    bootstrap=NON_NEGATIVE,
    seed=NON_NEGATIVE,  # numpy's generators take non-negative seeds only
    method=one_of(METHODS),
)
def fit(
    table: pd.DataFrame | str | Path,
    law: str = "chinchilla",
    bootstrap: int = 0,
    seed: int = 0,
    *,
    loss: str = "huber",
    delta: float = HUBER_DELTA,
    method: str = "profile",
    procedure: str | None = None,
    base: Mapping[str, float] | None = None,
    params_column: str = "N",
) -> FitResult:
    """Fit `law` to a run table (columns N params, D tokens, C FLOPs, loss nats/token, optional U).

    Parameters
    ----------
    table : DataFrame or path accepted by `scaling.runs.table.load_runs`. law : one of
    `scaling.fitting.laws.LAW_NAMES`. To let a rolling backtest choose the law (`--law auto`),
    call
        `scaling.fitting.select.fit_auto`: the choice is built of fits, so it sits above this function.
    bootstrap : number of resamples (with replacement, of runs) for 95 % intervals; 0 for none.
    seed : seeds the resampling.
    loss : "huber" (Chinchilla's, with `delta` on log residuals) or "squared" (0.5 r^2).
    method : "profile" (our global search) or "classic" (Hoffmann et al.'s 4500-start L-BFGS-B grid with
        finite differences; chinchilla only, minutes).
    procedure : one of the law's `procedures`, None for its default: "joint" (every parameter at once) or,
        for data_constrained, "two_stage" (the default; Muennighoff et al.'s: base law with alpha = beta on
        the runs of at most 2.5 epochs, then R_D*, R_N* with the base fixed on all runs; the bootstrap
        redoes both stages).
    base : two_stage only: the base law's parameters (E, A, B, alpha of chinchilla_tied) fitted elsewhere,
        on runs without repetition, as Muennighoff et al. took theirs from Chinchilla's C4 IsoFLOP runs;
        stage 1 is then skipped (and not bootstrapped).
    params_column : "N" (non-embedding parameters, the default) or "N_total" (all parameters, a column
        of the table): the count the law reads as N. Predictions convert a target's N the same way.
    """
    if method == "classic" and bootstrap:
        raise UsageError("`method` classic is for comparison only; bootstrap with the default method")
    if law == AUTO:
        raise UsageError(
            'law "auto" is a choice among laws by rolling backtest, made of fits: call '
            "scaling.fitting.select.fit_auto(table, ...) (what `scaling fit --law auto` runs)"
        )
    law_obj = get_law(law)
    procedure = law_obj.procedures[0] if procedure is None else procedure
    if procedure not in law_obj.procedures:
        raise UsageError(
            f"unknown procedure {procedure!r} for law {law_obj.name}; choose {', '.join(law_obj.procedures)}"
        )
    if procedure != "joint" and method != "profile":
        raise UsageError(f"`method` {method} fits jointly; use it with `procedure` joint")
    if base is not None and procedure != "two_stage":
        raise UsageError("a given base law is for the two-stage fit of law data_constrained only")
    table, X, y_loss = _prepare(table, law_obj, params_column)
    problem = _Problem(law_obj, X, np.log(y_loss), loss, delta)
    staged = None
    if procedure == "two_stage":
        staged = _two_stage_fit(problem, base)
        theta, fval, converged = staged.theta, staged.objective, staged.converged
    elif method == "profile":
        theta, fval, converged = _global_fit(problem)
    elif method == "classic":
        if law_obj.name != "chinchilla":
            raise UsageError("`method` classic is Hoffmann et al.'s grid for the chinchilla law only")
        theta, fval = classic_fit(problem)
        converged = bool(_newton(problem, theta[None], max_iter=1)[2][0])
    params = law_obj.from_theta(theta)
    if converged:
        message = "Newton decrement ~ 0: a certified stationary point of the objective"
    else:
        message = (
            "did NOT converge: not a stationary point; a Newton step would lower the objective by a further "
            f"{_relative_decrement(problem, theta):.2g} of its value; treat the parameters with care"
        )
    if law_obj.name == "kaplan_c":
        message += f"; fitted on the {len(table)} runs of the compute-efficient frontier"
    lo, hi = law_obj.theta_bounds()
    pinned = [k for k, t, a, b in zip(law_obj.param_names, theta, lo, hi, strict=True) if t <= a or t >= b]
    residuals = problem.y - law_obj.log_predict(theta, X)
    if pinned:
        note = f"{', '.join(pinned)} at the edge of the allowed range: these runs do not determine it"
        message += f"; {note}"
        warnings.warn(f"law {law_obj.name}: {note}", ScalingWarning, stacklevel=2)
    result = FitResult(
        law=law_obj.name,
        params=params,
        objective=fval,
        n_points=len(table),
        converged=converged,
        compute_optimal=law_obj.compute_optimal(params),
        message=message,
        method=method,
        loss=loss,
        delta=delta,
        data_range={k: (float(table[k].min()), float(table[k].max())) for k in ("N", "D", "C")},
        procedure=procedure,
        stages=() if staged is None else staged.stages,
        noise_sigma=noise_sigma(residuals, len(law_obj.param_names)),
        params_column=params_column,
    )
    if not converged:
        warnings.warn(f"fit of law {law_obj.name} did not converge", ScalingWarning, stacklevel=2)
    if bootstrap:
        if staged is None:
            thetas, ok = bootstrap_thetas(problem, theta, bootstrap, seed)
        else:
            thetas, ok = staged.bootstrap(bootstrap_weights(problem.y.size, bootstrap, seed))
        result = _with_bootstrap(result, law_obj, thetas, ok)
    return result


def bootstrap_weights(points: int, n: int, seed: int) -> np.ndarray:
    """(n, points) resampling counts: `n` resamples of `points` runs with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(points, np.full(points, 1.0 / points), size=n).astype(float)


def refit_weighted(
    problem: _Problem, weights: np.ndarray, theta0: np.ndarray, refine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Refit `problem` under each row of `weights` (K, n), warm-started at the rows of `theta0` (K, p);
    refine=False skips the full refit of a row whose batch Newton run did not converge.
    Returns (thetas (K, p), converged (K,))."""
    batch = _Problem(problem.law, problem.X, problem.y, problem.loss, problem.delta, weights)
    thetas, _, ok = _newton(batch, theta0)
    # rare: a resample far from the full-data optimum gets a full refine
    for i in np.flatnonzero(~ok) if refine else ():
        single = _Problem(problem.law, problem.X, problem.y, problem.loss, problem.delta, weights[i : i + 1])
        start, _ = _lbfgs(single, theta0[i])
        refined, _, again = _newton(single, start[None])
        thetas[i], ok[i] = refined[0], again[0]
    return thetas, ok


def refit_resamples(
    result: FitResult, table: pd.DataFrame, n: int, seed: int, refine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Refit `result`'s law (with its loss and delta) on `n` resamples of `table`, the runs it was fitted
    on, warm-started at its parameters: (thetas (n, p), converged (n,)) as `bootstrap_thetas` returns."""
    law = get_law(result.law)
    _, X, loss = _prepare(table, law)
    problem = _Problem(law, X, np.log(loss), result.loss, result.delta)
    return bootstrap_thetas(problem, law.to_theta(result.params), n, seed, refine)


def bootstrap_thetas(
    problem: _Problem, theta: np.ndarray, n: int, seed: int, refine: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Refit `n` resamples of the runs (with replacement), warm-started at `theta`.
    Returns (thetas (n, p), converged (n,)). refine=False skips the full refit of a resample whose batch
    Newton run did not certify convergence (its theta is still descended from `theta`): the rolling
    backtests bootstrap every fold of every candidate law and cannot afford a second per such resample."""
    weights = bootstrap_weights(problem.y.size, n, seed)
    return refit_weighted(problem, weights, np.tile(theta, (n, 1)), refine)


def _with_bootstrap(result: FitResult, law: Law, thetas: np.ndarray, ok: np.ndarray) -> FitResult:
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
    if result.compute_optimal is not None:
        optimal = [law.compute_optimal(dict(zip(law.param_names, row, strict=True))) for row in natural]
        table = np.array([[o[k] for k in ("a", "b", "G")] for o in optimal])
        ci.update(interval_dict(table, ("a", "b", "G")))
    return FitResult(
        **{**result.__dict__, "ci": ci, "bootstrap_params": natural, "n_bootstrap_failed": failed}
    )


def interval_dict(samples: np.ndarray, names, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the columns of `samples` (K, len(names))."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail], axis=0)
    return {k: (float(a), float(b)) for k, a, b in zip(names, lo, hi, strict=True)}


# ---- staged fit: Muennighoff et al.'s procedure for the data-constrained law ---------------------------
@dataclass(frozen=True)
class _TwoStage:
    """A two-stage fit: the base law (tied exponents) on the runs of few epochs, then the repetition
    parameters with the base fixed on all runs. `theta` is the full law's, `stages` what each stage used;
    `base` is None when the base law was given rather than fitted."""

    base: _Problem | None  # stage 1: law chinchilla_tied on the runs of rows `stages[0].rows`
    repeats: _Problem  # stage 2: the full law with only its repetition parameters free, all runs
    base_theta: np.ndarray
    theta: np.ndarray
    objective: float
    converged: bool
    stages: tuple[FitStage, ...]

    @staticmethod
    def full_theta(base_theta: np.ndarray, repeat_theta: np.ndarray) -> np.ndarray:
        """(e, a, b, alpha) of the tied base and (log R_D*, log R_N*) -> the 7 of data_constrained."""
        return np.concatenate([base_theta, base_theta[..., 3:4], repeat_theta], axis=-1)

    def bootstrap(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both stages redone on every resample (`weights` (K, n) counts of all runs); a given base stays."""
        k = len(weights)
        base, ok_base = np.tile(self.base_theta, (k, 1)), np.ones(k, dtype=bool)
        if self.base is not None:
            rows = np.array(self.stages[0].rows)
            base, ok_base = refit_weighted(self.base, weights[:, rows], base)
        start = self.full_theta(base, np.tile(self.theta[-2:], (k, 1)))
        thetas, ok = refit_weighted(self.repeats, weights, start)
        return thetas, ok & ok_base


def _two_stage_fit(problem: _Problem, given_base: Mapping[str, float] | None = None) -> _TwoStage:
    """Muennighoff et al. 2023's fit of the data-constrained law (huggingface/datablations,
    utils/parametric_fit.ipynb): stage 1 fits E, A, B and alpha = beta on runs without (much) repetition,
    here the runs of at most `law.base_max_epochs` epochs (D / U), unless `given_base` holds them; stage 2
    fits R_D* and R_N* with those fixed on all runs. Both minimise the same objective as the joint fit."""
    law, X = problem.law, problem.X
    base_law = get_law(law.base_law)
    if given_base is None:
        epochs = X.require("D") / X.require("U")
        rows = np.flatnonzero(epochs <= law.base_max_epochs * (1 + 1e-9))
        if rows.size <= len(base_law.param_names):
            raise UsageError(
                f"the two-stage fit of law {law.name} fits its base law on the runs of at most "
                f"{law.base_max_epochs:g} epochs and needs more than {len(base_law.param_names)}; these runs "
                f"have {rows.size}. Use `procedure` joint"
            )
        base_X = Inputs.make(N=X.N[rows], D=X.D[rows])
        try:
            base_law.check_data(base_X)
        except UsageError as exc:
            raise UsageError(f"{exc} among the runs of at most {law.base_max_epochs:g} epochs") from None
        base = _Problem(base_law, base_X, problem.y[rows], problem.loss, problem.delta)
        base_theta, base_f, base_ok = _global_fit(base)
        rule = f"runs of at most {law.base_max_epochs:g} epochs (D / U), with alpha = beta"
    else:
        missing = [k for k in base_law.param_names if k not in given_base]
        if missing:
            raise UsageError(
                f"the given base law needs {', '.join(base_law.param_names)}; missing {', '.join(missing)}"
            )
        base, rows, base_f, base_ok = None, np.array([], dtype=int), math.nan, True
        base_theta = base_law.to_theta(given_base)
        rule = "given, fitted elsewhere"
    fixed = base_law.from_theta(base_theta)
    fixed["beta"] = fixed["alpha"]
    repeats = _Problem(Frozen(law, law.repetition_params, fixed), X, problem.y, problem.loss, problem.delta)
    theta, fval, ok = _repetition_search(repeats, fixed)
    stages = (
        FitStage("base", base_law.param_names, tuple(int(i) for i in rows), rule, base_f, base_ok),
        FitStage(
            "repetition",
            law.repetition_params,
            tuple(range(problem.y.size)),
            f"all runs, with {', '.join(k for k in law.param_names if k not in law.repetition_params)} fixed",
            fval,
            ok,
        ),
    )
    return _TwoStage(base, repeats, base_theta, theta, fval, bool(base_ok and ok), stages)


def _repetition_search(repeats: _Problem, fixed: Mapping[str, float]) -> tuple[np.ndarray, float, bool]:
    """Stage 2 as the paper searched it: L-BFGS in R* itself (epochs, not log epochs) from every pair of
    the published starts `law.repetition_starts`, then Newton from the best to certify the optimum.

    Why not a global search: on the paper's runs stage 2 has several minima (R_D* ~ 15, 47 and 95 within
    0.2 % of one objective) and which one a local search reaches depends on the space it searches in. The
    objective is flat in R* for large R*, so searches in R* from starts of at most 20 epochs stay in the
    nearest basin, as the paper's did (torch L-BFGS on R*). A lower minimum elsewhere is reported."""
    law = repeats.law.law
    free = [law.param_names.index(k) for k in law.repetition_params]
    lo, hi = law.theta_bounds()
    r_bounds = list(zip(np.exp(lo[free]), np.exp(hi[free]), strict=True))

    base_theta = law.to_theta({**fixed, **dict.fromkeys(law.repetition_params, 1.0)})

    def theta_at(r_star: np.ndarray) -> np.ndarray:
        theta = base_theta.copy()
        theta[free] = np.log(r_star)
        return theta

    def fun(r_star: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = repeats.value_grad(theta_at(r_star))
        if not np.isfinite(f):
            return 1e300, np.zeros_like(r_star)
        return float(f), np.reshape(g, -1)[free] / r_star  # d/dR* = d/dlog R* / R*

    searched = [
        optimize.minimize(fun, start, jac=True, method="L-BFGS-B", bounds=r_bounds)
        for start in itertools.product(law.repetition_starts, repeat=len(free))
    ]
    best = min(searched, key=lambda result: result.fun)
    theta, fval, ok = _newton(repeats, theta_at(best.x)[None])
    lowest, lowest_f, _ = _global_fit(repeats)
    r_d = law.repetition_params[0]
    found, elsewhere = law.from_theta(theta[0])[r_d], law.from_theta(lowest)[r_d]
    if lowest_f < fval[0] * (1 - 1e-6) and not 0.8 < elsewhere / found < 1.25:
        warnings.warn(
            f"law {law.name}: stage 2 also has a minimum at {r_d} = {elsewhere:.3g} with a "
            f"{1 - lowest_f / fval[0]:.2%} lower objective than the published search's {r_d} = {found:.3g}: "
            f"these runs do not determine {r_d}",
            ScalingWarning,
            stacklevel=5,
        )
    return theta[0], float(fval[0]), bool(ok[0])


# ---- Hoffmann et al.'s procedure, for comparison ---------------------------------------------------
def classic_starts() -> np.ndarray:
    """Chinchilla's 4500 starting points as thetas (e, a, b, alpha, beta)."""
    g = CHINCHILLA_GRID
    mesh = np.meshgrid(g["e"], g["a"], g["b"], g["alpha"], g["beta"], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def classic_single(problem: _Problem, start: np.ndarray) -> tuple[np.ndarray, float]:
    """One classic fit: scipy L-BFGS-B, no bounds, finite-difference gradients, default tolerances."""
    result = optimize.minimize(lambda t: float(problem.objective(t)), start, method="L-BFGS-B")
    return result.x, float(result.fun)


@single_threaded_blas
def classic_fit(problem: _Problem, starts: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Best of classic single fits from every start (all 4500 by default: minutes)."""
    starts = classic_starts() if starts is None else starts
    best_theta, best_f = starts[0], math.inf
    with np.errstate(all="ignore"):
        for start in starts:
            theta, f = classic_single(problem, start)
            if np.isfinite(f) and f < best_f:
                best_theta, best_f = theta, f
    return best_theta, best_f


# ---- likelihood-ratio test -------------------------------------------------------------------------
@dataclass(frozen=True)
class LikelihoodRatioTest:
    """Test of a published parameter set against the free fit (Besiroglu et al. 2024, section 3).

    Residuals of log loss are modelled by a scaled Huber density, log p(r) = -huber(r / s) - log(s Z);
    the null fixes the law's parameters (scale s free), the alternative frees them all.
    statistic = 2 (log L_free - log L_null) ~ chi^2(df = number of law parameters)."""

    params: dict[str, float]
    statistic: float
    df: int
    p_value: float
    log_likelihood_null: float
    log_likelihood_free: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _huber_log_norm(delta: float) -> float:
    return math.log(
        math.sqrt(2 * math.pi) * (1 - 2 * stats.norm.sf(delta)) + 2 * math.exp(-0.5 * delta * delta) / delta
    )


def _max_log_likelihood(problem: _Problem, theta: np.ndarray, free: bool) -> float:
    """Maximum over the scale (and over theta when `free`) of the scaled-Huber log-likelihood."""
    n, delta, law = problem.y.size, problem.delta, problem.law
    lo, hi = law.theta_bounds()
    log_z = _huber_log_norm(delta)

    def neg_ll(x):
        th, log_s = (x[:-1], x[-1]) if free else (theta, x[0])
        logp, jac = law.jacobian(th, problem.X)
        s = math.exp(log_s)
        value, psi, _ = _rho((problem.y - logp) / s, "huber", delta)
        r = (problem.y - logp) / s
        nll = value.sum() + n * (log_s + log_z)
        d_log_s = -(psi * r).sum() + n
        if not free:
            return nll, np.array([d_log_s])
        return nll, np.append(-(psi @ jac) / s, d_log_s)

    resid = problem.y - law.log_predict(theta, problem.X)
    x0 = [math.log(max(np.abs(resid).mean() / 1.0, 1e-12))]
    bounds = [(-40.0, 5.0)]
    if free:
        x0, bounds = [*theta, *x0], [*zip(lo, hi, strict=True), *bounds]
    best = math.inf
    for start in (x0, [*x0[:-1], x0[-1] - 3.0], [*x0[:-1], x0[-1] + 3.0]):
        res = optimize.minimize(
            neg_ll,
            np.array(start),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12},
        )
        best = min(best, float(res.fun))
    return -best


@single_threaded_blas
def likelihood_ratio_test(
    table: pd.DataFrame | str | Path,
    params: Mapping[str, float],
    law: str = "chinchilla",
    fit_result: FitResult | None = None,
) -> LikelihoodRatioTest:
    """p-value of the hypothesis that the runs follow `law` with exactly `params` (e.g. a published set)."""
    law_obj = get_law(law)
    missing = [k for k in law_obj.param_names if k not in params]
    if missing:
        raise UsageError(
            f"`params` for law {law_obj.name} must give {', '.join(law_obj.param_names)}; "
            f"missing {', '.join(missing)}"
        )
    _, X, y_loss = _prepare(table, law_obj)
    problem = _Problem(law_obj, X, np.log(y_loss))
    if fit_result is None or fit_result.law != law_obj.name:
        theta_hat, _, _ = _global_fit(problem)
    else:
        theta_hat = law_obj.to_theta(fit_result.params)
    ll_null = _max_log_likelihood(problem, law_obj.to_theta(params), free=False)
    ll_free = max(_max_log_likelihood(problem, theta_hat, free=True), ll_null)
    df = len(law_obj.param_names)
    statistic = 2.0 * (ll_free - ll_null)
    return LikelihoodRatioTest(
        params={k: float(params[k]) for k in law_obj.param_names},
        statistic=statistic,
        df=df,
        p_value=float(stats.chi2.sf(statistic, df)),
        log_likelihood_null=ll_null,
        log_likelihood_free=ll_free,
    )


# ---- backtest --------------------------------------------------------------------------------------
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

