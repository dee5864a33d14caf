"""Downstream accuracy from a model ladder: `fit_task` fits (N, D) -> task loss -> accuracy in two steps
(Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model Ladders",
arXiv:2412.04403), or (N, D) -> LM loss -> accuracy when no task loss is logged.

Step 1: the chinchilla law L(N, D) = E + A/N^alpha + B/D^beta fitted (Huber of log residuals) to the
task loss of each run's final checkpoint. Step 2: a sigmoid from that loss to accuracy,
acc = chance + (ceiling - chance) / (1 + exp(k (L - L0))), floor at chance and ceiling <= 1, fitted to the
runs' checkpoints. The bootstrap resamples runs and refits both steps on the same resample.

Units: N params, D tokens, loss nats/token (a task loss in whatever unit it is logged, e.g. bits per
byte), accuracy a fraction in [0, 1].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize

from scaling.errors import NON_NEGATIVE, ScalingWarning, UsageError, checked
from scaling.fitting.bootstrap import bootstrap_weights, refit_weighted, with_bootstrap
from scaling.fitting.data import prepare_runs
from scaling.fitting.laws import get_law
from scaling.fitting.objective import Problem
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult

FORMAT = "scaling.task_fit/1"
PREDICTION_FORMAT = "scaling.task_prediction/1"
MIN_RUNS = 4  # distinct final (N, D): fewer cannot fit a law and test it
STEP1_LAW = "chinchilla"
STEP1_FALLBACK = "saturating_c"  # too few runs, or a design that does not identify chinchilla
# A task is "not yet predictable" when its best final accuracy is within this many run-to-run spreads of
# chance (or of NO_NOISE_MARGIN without reruns): the sigmoid's rise is not seen, so its shape is a guess.
CHANCE_SPREADS = 3.0
NO_NOISE_MARGIN = 0.02  # accuracy points; the spread of a 5-shot score on ~1000 questions is ~0.01-0.015


# ---- inputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskPoints:
    """The evaluations of one task along a ladder: one row per checkpoint (or per run when only final
    scores are known).

    Parameters
    ----------
    task : the task's name.
    chance : the accuracy of guessing (floor of the sigmoid), a fraction.
    N : params of each row's model; D : tokens trained at the checkpoint.
    accuracy : fraction in [0, 1]; all in [0, 100] with some above 1 is read as percent (warned).
    task_loss : the task's loss (e.g. bits per byte of the correct answer); None for one step through
        `loss`.
    loss : LM loss (nats/token); needed when `task_loss` is None.
    final : bool mask, True on each run's last checkpoint; None: every row is final.
    run : run id of each row (reruns share N and D, not the id); None: each final row its own run and
        each intermediate row belongs to the final row of the same N.
    """

    _: KW_ONLY
    task: str
    chance: float
    N: np.ndarray
    D: np.ndarray
    accuracy: np.ndarray
    task_loss: np.ndarray | None = None
    loss: np.ndarray | None = None
    final: np.ndarray | None = None
    run: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = np.asarray(self.N, dtype=float).reshape(-1)
        put = object.__setattr__
        put(self, "N", n)
        for name in ("D", "accuracy", "task_loss", "loss"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=float).reshape(-1)
            if arr.size != n.size:
                raise UsageError(f"task {self.task}: `{name}` has {arr.size} values, `N` has {n.size}")
            if not np.isfinite(arr).all():
                raise UsageError(f"task {self.task}: `{name}` has missing or non-finite values")
            put(self, name, arr)
        if (self.N <= 0).any() or (self.D <= 0).any():
            raise UsageError(f"task {self.task}: N and D must be positive")
        if self.task_loss is None and self.loss is None:
            raise UsageError(
                f"task {self.task}: give the task loss or the LM loss; accuracy alone has no step to predict"
            )
        final = np.ones(n.size, bool) if self.final is None else np.asarray(self.final, bool).reshape(-1)
        if final.size != n.size:
            raise UsageError(f"task {self.task}: `final` has {final.size} values, `N` has {n.size}")
        put(self, "final", final)
        if self.run is None:
            run = np.array([f"row{i}" for i in range(n.size)], dtype=object)
            for i in np.flatnonzero(~final):  # an intermediate row joins its size's last final run
                same = np.flatnonzero(final & (n == n[i]))
                run[i] = run[same[-1]] if same.size else f"N{n[i]:g}"
        else:
            run = np.asarray(self.run).astype(str).astype(object).reshape(-1)
            if run.size != n.size:
                raise UsageError(f"task {self.task}: `run` has {run.size} values, `N` has {n.size}")
        put(self, "run", run)
        put(self, "accuracy", _as_fraction(self.accuracy, self.task))
        if not 0.0 <= float(self.chance) < 1.0:
            raise UsageError(f"task {self.task}: `chance` must be in [0, 1), got {self.chance}")
        put(self, "chance", float(self.chance))

    @property
    def x(self) -> np.ndarray:
        """The quantity step 2 reads: the task loss, or the LM loss for one step."""
        return self.loss if self.task_loss is None else self.task_loss

    def final_table(self) -> pd.DataFrame:
        """One row per run (its final checkpoint): run, N, D, C, loss (the step-1 target), accuracy."""
        f = self.final
        return pd.DataFrame(
            {
                "run": self.run[f],
                "N": self.N[f],
                "D": self.D[f],
                "C": 6.0 * self.N[f] * self.D[f],
                "loss": self.x[f],
                "accuracy": self.accuracy[f],
            }
        )


def _as_fraction(accuracy: np.ndarray, task: str) -> np.ndarray:
    """Accuracy as a fraction: percent (all in [0, 100], some above 1) converted with a warning."""
    if (accuracy < 0).any() or (accuracy > 100).any():
        raise UsageError(
            f"task {task}: accuracy must be a fraction in [0, 1] (or percent in [0, 100]), got values from "
            f"{accuracy.min():g} to {accuracy.max():g}"
        )
    if (accuracy > 1).any():
        warnings.warn(
            f"task {task}: accuracy above 1 read as percent (divided by 100)", ScalingWarning, stacklevel=4
        )
        return accuracy / 100.0
    return accuracy


def rerun_noise(points: TaskPoints) -> float | None:
    """Run-to-run spread of the final accuracy (a fraction): the pooled standard deviation over the
    (N, D) settings trained more than once; None without reruns."""
    table = points.final_table()
    groups = table.groupby(["N", "D"])["accuracy"]
    dof = (groups.count() - 1).clip(lower=0)
    if dof.sum() == 0:
        return None
    ss = groups.apply(lambda a: float(((a - a.mean()) ** 2).sum())).sum()
    return float(math.sqrt(ss / dof.sum()))


# ---- step 2: the sigmoid -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sigmoid:
    """acc = floor + (ceiling - floor) / (1 + exp(k (x - x0))): accuracy falling from `ceiling` to
    `floor` (chance) as the loss x rises; x0 the loss at the midpoint, k > 0 its steepness (1/loss unit)."""

    floor: float
    ceiling: float
    k: float
    x0: float

    def __call__(self, x: ArrayLike) -> np.ndarray:
        z = np.clip(self.k * (np.asarray(x, dtype=float) - self.x0), -500, 500)
        return self.floor + (self.ceiling - self.floor) / (1.0 + np.exp(z))

    def to_json(self) -> dict[str, float]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Sigmoid:
        return cls(**{k: float(obj[k]) for k in ("floor", "ceiling", "k", "x0")})


def fit_sigmoid(x: np.ndarray, acc: np.ndarray, floor: float, weights: np.ndarray | None = None) -> Sigmoid:
    """Least-squares sigmoid with its floor fixed at `floor` and its ceiling in (floor, 1]."""
    w = np.ones_like(x) if weights is None else weights
    sw = np.sqrt(w)
    spread = max(float(np.ptp(x)), 1e-6)

    def residual(p: np.ndarray) -> np.ndarray:
        return sw * (Sigmoid(floor, p[0], p[1], p[2])(x) - acc)

    start = np.array([min(1.0, max(acc.max(), floor + 0.01) + 0.05), 4.0 / spread, float(np.median(x))])
    lo = [floor + 1e-6, 1e-6 / spread, x.min() - 20 * spread]
    hi = [1.0, 1e3 / spread, x.max() + 20 * spread]
    start = np.clip(start, np.add(lo, 1e-9), np.subtract(hi, 1e-9))
    sol = optimize.least_squares(residual, start, bounds=(lo, hi), method="trf", x_scale="jac")
    return Sigmoid(floor, *map(float, sol.x))


# ---- the fit -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskPrediction:
    """Predicted accuracy (a fraction) of a model of N params trained on D tokens, with its 95 % interval;
    the task loss and its interval in two-step fits (None in one step); `within_noise` says whether the
    interval's half-width is within the ladder's run-to-run spread (None without reruns)."""

    task: str
    N: float
    D: float
    accuracy: float
    accuracy_ci: tuple[float, float] | None
    task_loss: float | None
    task_loss_ci: tuple[float, float] | None
    within_noise: bool | None

    def __repr__(self) -> str:
        ci = "" if self.accuracy_ci is None else f" [{self.accuracy_ci[0]:.4f}, {self.accuracy_ci[1]:.4f}]"
        return (
            f"TaskPrediction(task={self.task!r}, N={self.N:.4g}, D={self.D:.4g}, "
            f"accuracy={self.accuracy:.4f}{ci})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PREDICTION_FORMAT,
            **self.__dict__,
            "accuracy_ci": None if self.accuracy_ci is None else list(self.accuracy_ci),
            "task_loss_ci": None if self.task_loss_ci is None else list(self.task_loss_ci),
        }


@dataclass(frozen=True)
class TaskFit:
    """A task's accuracy law. `step1` is the scaling.fitting FitResult of (N, D) -> task loss (two steps)
    or LM loss (one step); `sigmoid` maps that loss to accuracy. Each resample of the runs refits both:
    the step-1 refit is a row of `step1.bootstrap_params`, the sigmoid's (ceiling, k, x0) the same row of
    `bootstrap_sigmoid` (K, 3). `noise` is the run-to-run spread of accuracy from reruns (None without)."""

    task: str
    chance: float
    two_step: bool
    step1: FitResult
    sigmoid: Sigmoid
    _: KW_ONLY
    noise: float | None = None
    n_runs: int = 0
    n_points: int = 0  # checkpoints step 2 was fitted on
    sigmoid_rmse: float = math.nan  # accuracy, on those checkpoints
    bootstrap_sigmoid: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v:.4g}" for k, v in self.step1.params.items())
        s = self.sigmoid
        n_boot = 0 if self.bootstrap_sigmoid is None else len(self.bootstrap_sigmoid)
        return (
            f"TaskFit(task={self.task!r}, two_step={self.two_step}, step1=[{self.step1.law}: {p}], "
            f"sigmoid=[floor={s.floor:.4g}, ceiling={s.ceiling:.4g}, k={s.k:.4g}, x0={s.x0:.4g}], "
            f"noise={self.noise if self.noise is None else round(self.noise, 5)}, n_runs={self.n_runs}, "
            f"bootstrap={n_boot})"
        )

    def predict(self, N: float, D: float) -> TaskPrediction:
        """Accuracy of a model of N params trained on D tokens, with the 95 % bootstrap interval."""
        N, D = float(N), float(D)
        if not (N > 0 and D > 0):
            raise UsageError(f"N and D must be positive, got N={N:g}, D={D:g}")
        x = float(self.step1.predict(N=[N], D=[D])[0])
        acc = float(self.sigmoid(x))
        acc_ci = x_ci = None
        xs = self.step1.bootstrap_predict(N=[N], D=[D])
        if xs is not None and self.bootstrap_sigmoid is not None:
            xs = xs[:, 0]
            ceiling, k, x0 = self.bootstrap_sigmoid.T
            accs = Sigmoid(self.chance, ceiling, k, x0)(xs)
            acc_ci = tuple(float(v) for v in np.percentile(accs, [2.5, 97.5]))
            x_ci = tuple(float(v) for v in np.percentile(xs, [2.5, 97.5]))
        within = None
        if self.noise is not None and acc_ci is not None:
            within = bool((acc_ci[1] - acc_ci[0]) / 2 <= self.noise)
        return TaskPrediction(
            task=self.task, N=N, D=D, accuracy=acc, accuracy_ci=acc_ci,
            task_loss=x if self.two_step else None, task_loss_ci=x_ci if self.two_step else None,
            within_noise=within,
        )

    def describe(self) -> str:
        s = self.sigmoid
        what = "task loss" if self.two_step else "LM loss (nats/token)"
        lines = [
            f"task {self.task}: {'two steps' if self.two_step else 'one step'}, (N, D) -> {what} -> "
            "accuracy; "
            f"{self.n_runs} runs, {self.n_points} checkpoints in step 2",
            f"step 1 ({self.step1.law}): " + ", ".join(f"{k}={v:.4g}" for k, v in self.step1.params.items()),
            f"step 2: accuracy = {s.floor:.4g} + ({s.ceiling:.4g} - {s.floor:.4g}) / "
            f"(1 + exp({s.k:.4g} ({what.split(' (')[0]} - {s.x0:.4g})))  rmse {self.sigmoid_rmse:.4f}",
            "run-to-run spread of accuracy: "
            + ("unknown (no reruns)" if self.noise is None else f"{self.noise:.4f}"),
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task,
            "chance": self.chance,
            "two_step": self.two_step,
            "step1": self.step1.to_json(),
            "sigmoid": self.sigmoid.to_json(),
            "noise": self.noise,
            "n_runs": self.n_runs,
            "n_points": self.n_points,
            "sigmoid_rmse": self.sigmoid_rmse,
            "bootstrap_sigmoid": None if self.bootstrap_sigmoid is None else self.bootstrap_sigmoid.tolist(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TaskFit:
        if not isinstance(obj, Mapping) or obj.get("format", FORMAT) != FORMAT:
            raise UsageError(f"not a task fit: expected a JSON object with format {FORMAT!r}")
        try:
            step1 = FitResult.from_json(obj["step1"])
            boot = obj.get("bootstrap_sigmoid")
            return cls(
                task=str(obj["task"]),
                chance=float(obj["chance"]),
                two_step=bool(obj["two_step"]),
                step1=step1,
                sigmoid=Sigmoid.from_json(obj["sigmoid"]),
                noise=None if obj.get("noise") is None else float(obj["noise"]),
                n_runs=int(obj.get("n_runs", 0)),
                n_points=int(obj.get("n_points", 0)),
                sigmoid_rmse=float(obj.get("sigmoid_rmse", math.nan)),
                bootstrap_sigmoid=None if boot is None else np.asarray(boot, float).reshape(-1, 3),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed task fit: {exc}") from None


def _step2_rows(points: TaskPoints) -> np.ndarray:
    """Indices of the checkpoints step 2 is fitted on: all of them."""
    return np.arange(points.N.size)


@checked(bootstrap=NON_NEGATIVE, seed=NON_NEGATIVE)
def fit_task(points: TaskPoints, *, bootstrap: int = 200, seed: int = 0) -> TaskFit:
    """Fit a task's accuracy along a ladder: (N, D) -> task loss (chinchilla law on each run's final
    checkpoint) -> accuracy (sigmoid, floor at chance, on the checkpoints); 95 % intervals from `bootstrap`
    resamples of the runs, both steps refitted on each.

    UsageError: fewer than `MIN_RUNS` distinct final (N, D); an accuracy that never leaves chance."""
    table = points.final_table()
    distinct = len(table.drop_duplicates(["N", "D"]))
    if distinct < MIN_RUNS:
        raise UsageError(
            f"task {points.task}: {distinct} distinct final (N, D) settings; give at least {MIN_RUNS} runs"
        )
    noise = rerun_noise(points)
    margin = CHANCE_SPREADS * noise if noise is not None else NO_NOISE_MARGIN
    best = float(table["accuracy"].max())
    if best - points.chance <= margin:
        raise UsageError(
            f"task {points.task} is not yet predictable at these scales: its best final accuracy "
            f"{best:.3f} is within {margin:.3f} of chance ({points.chance:.3f})"
        )
    law_name = STEP1_LAW if distinct >= 5 else STEP1_FALLBACK
    step1 = fit(table[["N", "D", "C", "loss"]], law_name)
    rows = _step2_rows(points)
    x, acc = points.x[rows], points.accuracy[rows]
    sig = fit_sigmoid(x, acc, points.chance)
    rmse = float(np.sqrt(np.mean((sig(x) - acc) ** 2)))
    boot = None
    if bootstrap:
        step1, boot = _bootstrap(points, table, step1, rows, bootstrap, seed)
    return TaskFit(
        task=points.task, chance=points.chance, two_step=points.task_loss is not None, step1=step1,
        sigmoid=sig, noise=noise, n_runs=len(table), n_points=rows.size, sigmoid_rmse=rmse,
        bootstrap_sigmoid=boot,
    )


def _bootstrap(
    points: TaskPoints, table: pd.DataFrame, step1: FitResult, rows: np.ndarray, k: int, seed: int
) -> tuple[FitResult, np.ndarray]:
    """Refit both steps on `k` resamples of the runs: `step1` with its bootstrap (the resamples whose
    step-1 refit converged) and the sigmoid's (ceiling, k, x0) on those same resamples, (k', 3)."""
    law = get_law(step1.law)
    runs = prepare_runs(table[["N", "D", "C", "loss"]], law)
    problem = Problem(law, runs.X, np.log(runs.loss), step1.loss, step1.delta)
    counts = bootstrap_weights(len(table), k, seed)  # (k, runs): times each run is drawn
    theta = law.to_theta(step1.params)
    thetas, ok = refit_weighted(problem, counts, np.tile(theta, (k, 1)))
    run_index = {r: i for i, r in enumerate(table["run"])}
    owner = np.array([run_index.get(r, -1) for r in points.run[rows]])
    x, acc = points.x[rows], points.accuracy[rows]
    sigmoids = np.empty((k, 3))
    for i in range(k):
        w = np.where(owner >= 0, counts[i][np.maximum(owner, 0)], 0.0)
        keep = w > 0
        s = fit_sigmoid(x[keep], acc[keep], points.chance, w[keep])
        sigmoids[i] = (s.ceiling, s.k, s.x0)
    return with_bootstrap(step1, law, thetas, ok), sigmoids[ok]
