"""Schedule-aware learning-curve laws, fitted on every point of every curve.

`mpl`: the Multi-Power Law of Luo et al. 2025 (arXiv:2503.12811) for one model size,

    L(t) = L0 + A S(t)^-alpha - B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),
    G(x) = 1 - (C x + 1)^-beta

with S(t) the LR summed over steps 0..t (warmup included: the paper's S_1 + S_W) and S_k(t) the LR summed
over steps k..t. The sum runs over every step, warmup included, as in the paper's code.
`annealing_area`: Tissue et al. 2024's (arXiv:2408.11029) L = L0 + A S^-alpha - C S2, S2 the annealing
area with momentum, sum_k (eta_{k-1} - eta_k) (1 - lambda^(t - k)) / (1 - lambda), written with
tau = -1 / ln lambda steps and 1 / (1 - lambda) folded into C; one size; the measured alternative
(docs/fitting.md).
`mpl_n`: the Multi-Power Law for several sizes jointly, with L0 = E + P x^-p, A = A1 x^a, B = B1 x^b
(x = N / 1e8) and alpha, C, beta, gamma shared. For fully annealed runs of one schedule shape the loss
drop at the end is the same for every length, so the final loss is E + P x^-p + A1 x^a S_T^-alpha - const:
a final-point law in N and D (S_T is proportional to D at fixed batch and peak LR), Chinchilla's form when
a = 0.

The loss drop is a Stieltjes integral of G over the LR's decrease; it is evaluated on a grid of
`RESOLUTION` intervals per curve (plus every knot and every evaluated step): each interval's drop times G at
the LR it ends at and the LR area from its midpoint (the paper's eta_k, S_k(t)), which differs
from the per-step sum by < 1e-4 nats on the paper's schedules (docs/fitting.md). Derivatives are analytic.
The objective is the paper's (and Chinchilla's): Huber (delta 1e-3) of log(loss) - log(prediction), summed.

Units: N params, steps optimizer updates, lr as logged, loss nats/token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.special import huber

from scaling.defaults import HUBER_DELTA
from scaling.errors import UsageError
from scaling.fitting.intervals import interval_dict
from scaling.io import check_format, read_json
from scaling.runs.curves import Curve, Schedule

FORMAT = "scaling.curve_fit/1"
RESOLUTION = 1000  # quadrature intervals per curve; see docs/fitting.md for the error against per-step sums
N_REF = 1e8  # mpl_n's size unit: keeps its prefactors O(1)
BASE = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
CURVE_LAWS = {
    "mpl": BASE,
    "mpl_n": ("E", "P", "p", "A", "a", "alpha", "B", "b", "C", "beta", "gamma"),
    "annealing_area": ("L0", "A", "alpha", "C", "tau"),
}


@dataclass(frozen=True, repr=False)
class CurveDesign:
    """What the law needs of one curve, computed once: the LR area S(t_i) at each evaluated step,
    and for the m grid intervals where the LR changes their drop eta(start) - eta(end), log eta at the
    end (the LR changed to) and the area between the midpoint and each t_i (0 for intervals after t_i,
    where G(0) = 0)."""

    N: float
    area: np.ndarray  # (n,)
    drop: np.ndarray  # (m,)
    log_lr: np.ndarray  # (m,)
    gap: np.ndarray  # (n, m)
    steps_since: np.ndarray  # (n, m) steps from the interval's midpoint to t_i, 0 after t_i (annealing_area)

    @classmethod
    def of(cls, schedule: Schedule, steps: np.ndarray, N: float, resolution: int = RESOLUTION) -> CurveDesign:
        steps = np.asarray(steps, float)
        end = float(steps.max())
        knots = schedule.steps[schedule.steps < end]
        grid = np.union1d(np.union1d(knots, steps), np.linspace(0, end, resolution + 1))
        lr = schedule.lr(grid)
        drop = lr[:-1] - lr[1:]
        keep = drop != 0
        mid = ((grid[:-1] + grid[1:]) / 2)[keep]
        floor = 1e-12 * max(float(schedule.lrs.max()), 1e-30)  # an LR of exactly 0: eta^-gamma finite, G ~ 1
        area = schedule.area(steps)
        gap = np.clip(area[:, None] - schedule.area(mid)[None, :], 0.0, None)
        steps_since = np.clip(steps[:, None] - mid[None, :], 0.0, None)
        after = lr[1:][keep]  # the LR the step changed to: the paper's eta_k, exact for a jump
        return cls(N=float(N), area=area, drop=drop[keep], log_lr=np.log(np.maximum(after, floor)), gap=gap,
                   steps_since=steps_since)


def _base_prediction(
    base: np.ndarray, d: CurveDesign, jacobian: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss at the design's steps for the 7 MPL parameters, and d loss / d base (n, 7)."""
    L0, A, alpha, B, C, beta, gamma = base
    power = d.area ** -alpha
    w = np.exp(-gamma * d.log_lr)
    z = C * w[None, :] * d.gap
    q = np.exp(-beta * np.log1p(z))  # (1 + z)^-beta
    drop = (1.0 - q) @ d.drop
    loss = L0 + A * power - B * drop
    if not jacobian:
        return loss, None
    dq = beta * q / (1.0 + z) * z  # -dG/d(log z) ... times d log z / d theta below
    jac = np.empty((len(loss), 7))
    jac[:, 0] = 1.0
    jac[:, 1] = power
    jac[:, 2] = -A * power * np.log(d.area)
    jac[:, 3] = -drop
    jac[:, 4] = -B * (dq @ d.drop) / C
    jac[:, 5] = -B * ((q * np.log1p(z)) @ d.drop)
    jac[:, 6] = -B * ((dq * -d.log_lr[None, :]) @ d.drop)
    return loss, jac


def _to_base(law: str, theta: np.ndarray, N: float) -> tuple[np.ndarray, np.ndarray]:
    """The 7 MPL parameters of a curve of size N, and their derivative (7, P) by the law's parameters."""
    if law == "mpl":
        return theta, np.eye(7)
    E, P, p, A1, a, alpha, B1, b, C, beta, gamma = theta
    lx = math.log(N / N_REF)
    ep, ea, eb = math.exp(-p * lx), math.exp(a * lx), math.exp(b * lx)
    base = np.array([E + P * ep, A1 * ea, alpha, B1 * eb, C, beta, gamma])
    jac = np.zeros((7, 11))
    jac[0, :3] = 1.0, ep, -P * ep * lx
    jac[1, 3:5] = ea, A1 * ea * lx
    jac[2, 5] = 1.0
    jac[3, 6:8] = eb, B1 * eb * lx
    jac[4:, 8:] = np.eye(3)
    return base, jac


def _annealing_prediction(theta: np.ndarray, d: CurveDesign, jacobian: bool):
    L0, A, alpha, C, tau = theta
    power = d.area ** -alpha
    decay = np.exp(-d.steps_since / tau)
    area2 = (1.0 - decay) @ d.drop  # 0 for intervals after t_i (steps_since 0)
    loss = L0 + A * power - C * area2
    if not jacobian:
        return loss, None
    jac = np.column_stack([np.ones_like(loss), power, -A * power * np.log(d.area), -area2,
                           C * ((decay * d.steps_since) @ d.drop) / tau**2])
    return loss, jac


def law_prediction(law: str, theta: np.ndarray, d: CurveDesign, jacobian: bool = False):
    """Loss of one curve (nats/token) under `law` at `theta`, and its derivative by theta when asked."""
    if law == "annealing_area":
        return _annealing_prediction(np.asarray(theta, float), d, jacobian)
    base, dbase = _to_base(law, np.asarray(theta, float), d.N)
    loss, jac = _base_prediction(base, d, jacobian)
    return loss, (None if jac is None else jac @ dbase)


def _bounds(law: str) -> tuple[np.ndarray, np.ndarray]:
    lower = {"L0": 0, "A": 0, "alpha": 1e-3, "B": 0, "C": 1e-6, "beta": 1e-3, "gamma": 0,
             "E": 0, "P": 0, "p": 0, "a": -2, "b": -2, "tau": 1}
    upper = {"alpha": 3, "beta": 5, "gamma": 2, "p": 3, "a": 2, "b": 2, "tau": 1e8}
    names = CURVE_LAWS[law]
    return (np.array([lower.get(n, 0) for n in names], float),
            np.array([upper.get(n, np.inf) for n in names], float))


def _starts(law: str, curves: Sequence[Curve], designs: Sequence[CurveDesign]) -> list[np.ndarray]:
    """Starting points: L0, A, alpha from a power law of the losses in the LR area (as the paper's code
    does), with two loss-drop scales B (nats per unit of LR) and C = 2, beta = gamma = 0.5 (the paper's
    fitted values are near 2, 0.6, 0.6 at every size)."""
    loss = np.concatenate([c.loss for c in curves])
    area = np.concatenate([d.area for d in designs])
    peak = max(float(c.schedule.lrs.max()) for c in curves)
    floor = loss.min()
    slope, intercept = np.polyfit(np.log(area), np.log(loss - floor + 0.01), 1)
    starts = []
    for B in (0.1 / peak, 0.5 / peak):  # a loss drop of 0.1 or 0.5 nats for a full anneal
        base = [max(floor - 0.1, 0.0), math.exp(intercept), min(max(-slope, 0.05), 2.0), B, 2.0, 0.5, 0.5]
        if law == "mpl":
            starts.append(np.array(base))
        elif law == "annealing_area":  # C: the same drop per unit of LR as B; tau: a tenth of the run
            starts.append(np.array([*base[:4], 0.1 * max(float(c.steps[-1]) for c in curves)]))
        else:
            starts.append(np.array([0.5 * base[0], 0.5 * base[0], 0.3, base[1], 0.0, base[2], B, 0.0,
                                    2.0, 0.5, 0.5]))
    return starts


def _solve(law: str, designs: Sequence[CurveDesign], loss: np.ndarray, start: np.ndarray, delta: float,
           weights: np.ndarray | None = None):
    log_y = np.log(loss)
    w = np.ones_like(log_y) if weights is None else np.sqrt(weights)

    def parts(theta):
        return [law_prediction(law, theta, d, jacobian=True) for d in designs]

    def residuals(theta):
        pred = np.concatenate([law_prediction(law, theta, d)[0] for d in designs])
        return w * (np.log(np.maximum(pred, 1e-10)) - log_y)

    def jac(theta):
        out = parts(theta)
        pred = np.maximum(np.concatenate([p for p, _ in out]), 1e-10)
        return w[:, None] * np.concatenate([j for _, j in out]) / pred[:, None]

    lo, hi = _bounds(law)
    start = np.clip(start, lo + 1e-9, hi - 1e-9)
    fit = least_squares(residuals, start, jac=jac, bounds=(lo, hi), loss="huber", f_scale=delta,
                        x_scale="jac", method="trf", max_nfev=400)
    return fit.x, float(huber(delta, fit.fun).sum()), bool(fit.success)


@dataclass(frozen=True)
class CurveFit:
    """A learning-curve law fitted to whole curves. `params` in natural units (L0, E, P in nats/token, B in
    nats per unit of LR); `objective` the summed Huber of log residuals; `ci` 95 % intervals from
    resampling whole runs (`bootstrap_params`, one row per resample)."""

    law: str
    params: dict[str, float]
    objective: float
    n_points: int
    n_curves: int
    converged: bool
    _: KW_ONLY
    sizes: tuple[float, ...] = ()
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    bootstrap_params: np.ndarray | None = None
    delta: float = HUBER_DELTA
    resolution: int = RESOLUTION

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v:.6g}" for k, v in self.params.items())
        n_boot = 0 if self.bootstrap_params is None else len(self.bootstrap_params)
        return (f"CurveFit(law={self.law!r}, {params}, objective={self.objective:.6g}, "
                f"n_points={self.n_points}, n_curves={self.n_curves}, bootstrap={n_boot})")

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[n] for n in CURVE_LAWS[self.law]])

    def check_size(self, N: float) -> None:
        if self.law != "mpl_n" and self.sizes and not any(abs(N / s - 1) < 0.05 for s in self.sizes):
            raise UsageError(f"this {self.law} fit is of one model size (N={self.sizes[0]:.4g}); it cannot "
                             f"predict N={N:.4g}: fit several sizes with --law mpl_n")

    def predict(self, schedule: Schedule, steps: np.ndarray, N: float) -> np.ndarray:
        """Predicted loss (nats/token) at `steps` of a run of N params under `schedule`; NaN at step 0."""
        self.check_size(N)
        return _predict(self.law, self.theta, schedule, steps, N, self.resolution)

    def predict_bootstrap(self, schedule: Schedule, steps: np.ndarray, N: float) -> np.ndarray | None:
        """(K, len(steps)) predictions of every bootstrap resample; None without a bootstrap."""
        if self.bootstrap_params is None:
            return None
        return np.array([_predict(self.law, theta, schedule, steps, N, self.resolution)
                         for theta in self.bootstrap_params])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "law": self.law, "params": dict(self.params), "objective": self.objective,
            "n_points": self.n_points, "n_curves": self.n_curves, "converged": self.converged,
            "sizes": list(self.sizes), "ci": {k: list(v) for k, v in self.ci.items()},
            "bootstrap_params": None if self.bootstrap_params is None else self.bootstrap_params.tolist(),
            "delta": self.delta, "resolution": self.resolution,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CurveFit:
        obj = check_format(obj, FORMAT, "a curve fit (`scaling fit --curves --json`)")
        boot = obj.get("bootstrap_params")
        return cls(
            law=str(obj["law"]), params={k: float(v) for k, v in obj["params"].items()},
            objective=float(obj["objective"]), n_points=int(obj["n_points"]), n_curves=int(obj["n_curves"]),
            converged=bool(obj["converged"]), sizes=tuple(float(s) for s in obj.get("sizes", ())),
            ci={k: (float(v[0]), float(v[1])) for k, v in obj.get("ci", {}).items()},
            bootstrap_params=None if boot is None else np.array(boot, float),
            delta=float(obj.get("delta", HUBER_DELTA)), resolution=int(obj.get("resolution", RESOLUTION)),
        )

    def describe(self) -> str:
        lines = [f"law {self.law} (learning curves): {self.n_curves} curves, {self.n_points} points, sizes "
                 + ", ".join(f"{s:.3g}" for s in self.sizes)
                 + f"; objective {self.objective:.6g}" + ("" if self.converged else " (NOT converged)")]
        for name, value in self.params.items():
            lo_hi = self.ci.get(name)
            ci = f"   95 % [{lo_hi[0]:.6g}, {lo_hi[1]:.6g}]" if lo_hi else ""
            lines.append(f"  {name:<6} = {value:.6g}{ci}")
        return "\n".join(lines)


def _predict(law: str, theta: np.ndarray, schedule: Schedule, steps: np.ndarray, N: float,
             resolution: int) -> np.ndarray:
    steps = np.asarray(steps, float)
    out = np.full(len(steps), np.nan)
    later = steps > 0  # the law has no value at step 0 (no LR area yet)
    if later.any():
        out[later] = law_prediction(law, theta, CurveDesign.of(schedule, steps[later], N, resolution))[0]
    return out


def _fit_designs(law: str, curves: Sequence[Curve], designs: Sequence[CurveDesign], delta: float,
                 starts: Sequence[np.ndarray]) -> tuple[np.ndarray, float, bool]:
    loss = np.concatenate([c.loss for c in curves])
    best = None
    for start in starts:
        theta, objective, ok = _solve(law, designs, loss, start, delta)
        if best is None or objective < best[1]:
            best = (theta, objective, ok)
    return best


def default_law(curves: Sequence[Curve]) -> str:
    """mpl for one model size, mpl_n for several."""
    return "mpl" if len({c.N for c in curves}) == 1 else "mpl_n"


def fit_curves(curves: Sequence[Curve], *, law: str | None = None, bootstrap: int = 0, seed: int = 0,
               delta: float = HUBER_DELTA, resolution: int = RESOLUTION) -> CurveFit:
    """Fit a learning-curve law to every point of every curve (`scaling.runs.curves.load_curves`).
    law None: mpl for one size, mpl_n for several. `bootstrap` K > 0 refits K resamples of whole runs
    (drawn with replacement) from the fit's optimum for 95 % intervals."""
    law = default_law(curves) if law is None else law
    if law not in CURVE_LAWS:
        raise UsageError(f"law must be one of {', '.join(CURVE_LAWS)} for curves (got {law!r})")
    sizes = tuple(sorted({c.N for c in curves}))
    if law in ("mpl", "annealing_area") and len(sizes) > 1:
        raise UsageError(f"law {law} fits one model size; these curves have {len(sizes)} (use mpl_n)")
    if law == "mpl_n" and len(sizes) < 3:
        raise UsageError(f"law mpl_n needs curves of at least 3 model sizes (L0 = E + P x^-p); "
                         f"got {len(sizes)}")
    if bootstrap < 0:
        raise UsageError(f"bootstrap must be >= 0 (got {bootstrap})")
    designs = [CurveDesign.of(c.schedule, c.steps, c.N, resolution) for c in curves]
    theta, objective, ok = _fit_designs(law, curves, designs, delta, _starts(law, curves, designs))
    names = CURVE_LAWS[law]
    boot, ci = None, {}
    if bootstrap:
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(bootstrap):
            pick = rng.integers(0, len(curves), len(curves))
            rows.append(_fit_designs(law, [curves[i] for i in pick], [designs[i] for i in pick], delta,
                                     [theta])[0])
        boot = np.array(rows)
        ci = interval_dict(boot, names)
    return CurveFit(law=law, params=dict(zip(names, map(float, theta), strict=True)), objective=objective,
                    n_points=sum(len(c.steps) for c in curves), n_curves=len(curves), converged=ok,
                    sizes=sizes, ci=ci, bootstrap_params=boot, delta=delta, resolution=resolution)


def is_curve_fit(path: str | Path) -> bool:
    """Whether `path` holds a curve fit (False for anything else, readable or not)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_curve_fit(path: str | Path) -> CurveFit:
    """Read a curve fit written by `scaling fit --curves --json`; UsageError on anything else (a
    final-point fit included)."""
    obj = read_json(path, "a fit result JSON")
    try:
        return CurveFit.from_json(obj)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UsageError(f"{path}: malformed curve fit ({exc})") from None


BACKTEST_FORMAT = "scaling.curve_backtest/1"


@dataclass(frozen=True)
class CurveBacktest:
    """A law fitted on some runs' curves predicting the others' whole curves: per held-out run, the mean
    relative error over its points (Luo et al.'s PredE) and the relative error of its final point."""

    law: str
    trained_on: tuple[str, ...]
    runs: tuple[str, ...]
    curve_error: tuple[float, ...]
    final_error: tuple[float, ...]

    def __repr__(self) -> str:
        return (f"CurveBacktest(law={self.law!r}, {len(self.trained_on)} fitted, {len(self.runs)} held out, "
                f"mean curve error {np.mean(self.curve_error):.4%})")

    def to_json(self) -> dict[str, Any]:
        return {"format": BACKTEST_FORMAT, "law": self.law, "trained_on": list(self.trained_on),
                "runs": [{"run": r, "curve_error": c, "final_error": f}
                         for r, c, f in zip(self.runs, self.curve_error, self.final_error, strict=True)],
                "mean_curve_error": float(np.mean(self.curve_error)),
                "mean_final_error": float(np.mean(self.final_error))}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CurveBacktest:
        obj = check_format(obj, BACKTEST_FORMAT, "a curve backtest")
        rows = obj["runs"]
        return cls(law=str(obj["law"]), trained_on=tuple(obj["trained_on"]),
                   runs=tuple(r["run"] for r in rows),
                   curve_error=tuple(float(r["curve_error"]) for r in rows),
                   final_error=tuple(float(r["final_error"]) for r in rows))

    def describe(self) -> str:
        lines = [f"backtest: {self.law} fitted on {len(self.trained_on)} curves, predicting {len(self.runs)} "
                 f"held-out runs: mean error along the curve {np.mean(self.curve_error):.3%}, of the final "
                 f"loss {np.mean(self.final_error):.3%} (worst {max(self.final_error):.3%})"]
        lines += [f"  {r:<24} curve {c:.3%}  final {f:.3%}"
                  for r, c, f in zip(self.runs, self.curve_error, self.final_error, strict=True)]
        return "\n".join(lines)


def backtest_curves(curves: Sequence[Curve], held_out: Sequence[str], *, law: str | None = None,
                    delta: float = HUBER_DELTA) -> CurveBacktest:
    """Fit `law` on the curves not named in `held_out` and predict the held-out runs' whole curves."""
    held = [c for c in curves if c.run in set(held_out)]
    train = [c for c in curves if c.run not in set(held_out)]
    if not held or not train:
        raise UsageError(f"a backtest needs runs on both sides: {len(train)} to fit, {len(held)} held out")
    fit = fit_curves(train, law=law, delta=delta)
    errors = [np.abs(fit.predict(c.schedule, c.steps, c.N) / c.loss - 1) for c in held]
    return CurveBacktest(law=fit.law, trained_on=tuple(c.run for c in train), runs=tuple(c.run for c in held),
                         curve_error=tuple(float(e.mean()) for e in errors),
                         final_error=tuple(float(e[-1]) for e in errors))


def top_compute_runs(curves: Sequence[Curve], fraction: float) -> list[str]:
    """The runs in the top `fraction` (0-1) by final compute 6 N D (at least one), the backtest's held-out
    runs as for the final-point laws' `--holdout-top`."""
    if not 0 < fraction < 1:
        raise UsageError(f"holdout_top must be between 0 and 1 (got {fraction})")
    order = sorted(curves, key=lambda c: c.N * c.tokens[-1], reverse=True)
    return [c.run for c in order[: max(1, round(fraction * len(curves)))]]
