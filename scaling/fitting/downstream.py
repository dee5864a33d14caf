"""Downstream accuracy from a model ladder: `fit_task` fits (N, D) -> task loss -> accuracy in two steps
(Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model Ladders",
arXiv:2412.04403), or (N, D) -> LM loss -> accuracy when no task loss is logged.

Step 1: a loss law in (N, D) (chinchilla_tied by default, L = E + A/N^a + B/D^a; Bhagia et al.'s
chinchilla) fitted (Huber of log residuals) to each run's final task loss, averaged over its last
checkpoints. Step 2: a sigmoid from that loss to accuracy, acc = floor + (ceiling - floor) /
(1 + exp(k (L - x0))), ceiling <= 1, fitted to the runs' smoothed checkpoints. `TaskMethod` names these
choices; `METHODS` holds ours ("ladder") and the published one ("bhagia2024"). The bootstrap resamples runs
and refits both steps on the same resample. docs/downstream_method.md has the method and its evidence.

Units: N params, D tokens, loss nats/token (a task loss in whatever unit it is logged, e.g. bits per
byte), accuracy a fraction in [0, 1].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize

from scaling.defaults import ISOFLOP_TOLERANCE
from scaling.errors import NON_NEGATIVE, Constraint, ScalingWarning, UsageError, checked
from scaling.fitting.bootstrap import bootstrap_weights, refit_weighted, with_bootstrap
from scaling.fitting.data import prepare_runs
from scaling.fitting.design import Design
from scaling.fitting.intervals import percentile_interval
from scaling.fitting.laws import get_law
from scaling.fitting.objective import Problem
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.fitting.solvers import single_threaded_blas

FORMAT = "scaling.task_fit/1"
PREDICTION_FORMAT = "scaling.task_prediction/1"
MIN_RUNS = 4  # distinct final (N, D): fewer cannot fit a law and test it
STEP1_FALLBACK = "saturating_c"  # too few runs, or a design that does not identify the method's law
# A task is "not yet predictable" when its best final accuracy is within this many run-to-run spreads of
# chance, and never less than NO_NOISE_MARGIN: the sigmoid's rise is not seen, so its shape is a guess.
CHANCE_SPREADS = 3.0
# Without reruns, and the least margin with them (reruns that happen to agree say little about a
# benchmark's sampling noise): about twice the largest rerun spread of final accuracy on the OLMo ladder
# (0.002-0.0097 over its 8 tasks; docs/downstream_method.md).
NO_NOISE_MARGIN = 0.02


# ---- inputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskPoints:
    """The evaluations of one task along a ladder: one row per checkpoint (or per run when only final
    scores are known).

    Parameters
    ----------
    task : the task's name.
    chance : the accuracy of guessing, a fraction: the sigmoid's floor (or its start when the method
        fits the floor) and the level a predictable task must leave.
    N : params of each row's model; D : tokens trained at the checkpoint.
    accuracy : fraction in [0, 1]; all in [0, 100] with some above 1 is read as percent (warned).
    task_loss : the task's loss (e.g. bits per byte of the correct answer); None for one step through
        `loss`.
    loss : LM loss (nats/token); needed when `task_loss` is None.
    final : bool mask, True on each run's last checkpoint; None: every row is final.
    run : run id of each row (reruns share N and D, not the id); None: each row its own run (every row
        final).
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
        if n.size == 0:
            raise UsageError(f"task {self.task}: no evaluations")
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
            if not final.all():
                raise UsageError(
                    f"task {self.task}: give `run` (the run of each row) to use intermediate checkpoints"
                )
            run = np.array([f"row{i}" for i in range(n.size)], dtype=object)
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


def settings(N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """A setting id per run: runs whose N and D both agree within `ISOFLOP_TOLERANCE` (1 %) share one
    (reruns; logged token counts differ by a batch or two)."""
    tol = math.log1p(ISOFLOP_TOLERANCE)
    logs = np.column_stack([np.log(N), np.log(D)])
    ids = np.arange(len(logs))
    for i in range(len(logs)):
        same = np.flatnonzero((np.abs(logs[:i] - logs[i]) <= tol).all(axis=1))
        if same.size:
            ids[i] = ids[same[0]]
    return ids


def rerun_noise(table: pd.DataFrame) -> float | None:
    """Run-to-run spread of the final accuracy (a fraction) of runs `table` (one row per run: N, D,
    accuracy): the pooled standard deviation over the settings trained more than once; None without."""
    groups = table.groupby(settings(table["N"].to_numpy(float), table["D"].to_numpy(float)))["accuracy"]
    dof = int((groups.count() - 1).sum())
    if dof == 0:
        return None
    ss = float(groups.apply(lambda a: float(((a - a.mean()) ** 2).sum())).sum())
    return math.sqrt(ss / dof)


# ---- step 2: the sigmoid -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sigmoid:
    """acc = floor + (ceiling - floor) / (1 + exp(k (x - x0))): accuracy falling from `ceiling` to
    `floor` as the loss x rises; x0 the loss at the midpoint, k > 0 its steepness (1/loss unit).
    Parameters may be arrays of one shape (one sigmoid per bootstrap resample)."""

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


def fit_sigmoid(
    x: np.ndarray, acc: np.ndarray, chance: float, *, free_floor: bool = False,
    weights: np.ndarray | None = None,
) -> Sigmoid:
    """Least-squares sigmoid of accuracy against loss x, ceiling <= 1: with the floor at `chance`, or
    free (`free_floor`; then in [ceiling - 1, ceiling], as Bhagia et al. bound it, started at chance).
    The midpoint x0 >= 0 and k >= 0 are started, as theirs, at x0 = 0.9, k = 3 with a ceiling of 1."""
    sw = np.sqrt(np.ones_like(x) if weights is None else weights)
    floor = chance
    if free_floor:  # p = (floor - ceiling, x0, k, ceiling): Bhagia et al.'s (a, x0, k, b)
        def unpack(p: Sequence[float]) -> Sigmoid:
            return Sigmoid(p[0] + p[3], p[3], p[2], p[1])

        start, lo, hi = [chance - 1.0, 0.9, 3.0, 1.0], [-1.0, 0.0, 0.0, 0.0], [0.0, np.inf, np.inf, 1.0]
    else:  # p = (ceiling, x0, k)
        def unpack(p: Sequence[float]) -> Sigmoid:
            return Sigmoid(floor, p[0], p[2], p[1])

        start, lo, hi = [1.0, 0.9, 3.0], [floor, 0.0, 0.0], [1.0, np.inf, np.inf]

    def residual(p: np.ndarray) -> np.ndarray:
        return sw * (unpack(p)(x) - acc)

    sol = optimize.least_squares(residual, start, bounds=(lo, hi), method="trf", max_nfev=50_000)
    return unpack([float(v) for v in sol.x])


# ---- the method ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskMethod:
    """How `fit_task` reads a ladder: which points feed each step and how each is fitted.

    smooth : moving-average window (checkpoints, within a run, in D order): a run's step-1 target is the
        mean task loss of its last `smooth` checkpoints; step-2 points are the running means.
    skip : fraction of each run's checkpoints (the earliest) left out of step 2.
    free_floor : fit the sigmoid's floor (Bhagia et al.) instead of fixing it at chance.
    anchor : add the point (loss 0, accuracy 1) to step 2 (Bhagia et al.'s "ideal point").
    law : the step-1 law (scaling.fitting.laws): "chinchilla" (Bhagia et al.'s E + A/N^a + B/D^b) or
        "chinchilla_tied" (a = b); `STEP1_FALLBACK` (in C alone) where the runs do not identify it.
    """

    name: str
    smooth: int = 5
    skip: float = 0.1
    free_floor: bool = False
    anchor: bool = False
    law: str = "chinchilla"

    def describe(self) -> str:
        return (
            f"method {self.name}: step 1 law {self.law} on the mean of each run's last {self.smooth} "
            "checkpoints; "
            "step 2 on every checkpoint "
            f"after the first {self.skip:.0%} of each run, moving average of {self.smooth}, floor "
            f"{'free' if self.free_floor else 'at chance'}"
            + (", with the ideal point (0, 1)" if self.anchor else "")
        )


# Bhagia et al. 2024's published pipeline (OLMo-ladder src/scripts/predict.py, --moving_avg 5 --skip_perc 0.1)
BHAGIA2024 = TaskMethod("bhagia2024", smooth=5, skip=0.1, free_floor=True, anchor=True)
# Ours: theirs with one exponent for N and D in step 1 (docs/downstream_method.md gives the evidence: lower
# errors at 7B, 13B and on held-out ladder sizes 1B and 3B).
LADDER = TaskMethod("ladder", smooth=5, skip=0.1, free_floor=True, anchor=True, law="chinchilla_tied")
METHODS = {m.name: m for m in (LADDER, BHAGIA2024)}
DEFAULT_METHOD = "ladder"


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

    def describe(self) -> str:
        """One line: the accuracy with its interval, the task loss with its, and the noise verdict."""
        acc = f"accuracy {self.accuracy:.4f}"
        if self.accuracy_ci:
            acc += f" (95 % CI {self.accuracy_ci[0]:.4f}-{self.accuracy_ci[1]:.4f})"
        loss = "" if self.task_loss is None else f", task loss {self.task_loss:.4g}"
        if self.task_loss_ci:
            loss += f" ({self.task_loss_ci[0]:.4g}-{self.task_loss_ci[1]:.4g})"
        noise = {None: "", True: "; within the run-to-run spread", False: "; wider than the rerun spread"}
        return f"{self.task} at N = {self.N:.4g}, D = {self.D:.4g}: {acc}{loss}{noise[self.within_noise]}"

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
    the step-1 refit is a row of `step1.bootstrap_params`, the sigmoid's (floor, ceiling, k, x0) the
    same row of `bootstrap_sigmoid` (K, 4). `noise` is the run-to-run spread of accuracy from reruns
    (None without)."""

    task: str
    chance: float
    two_step: bool
    step1: FitResult
    sigmoid: Sigmoid
    _: KW_ONLY
    method: str = DEFAULT_METHOD  # the `TaskMethod` it was fitted by
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
        # too many failed step-1 refits could be a whole tail: no interval rather than a too narrow one
        if xs is not None and self.bootstrap_sigmoid is not None and self.step1.bootstrap_unreliable is None:
            xs = xs[:, 0]
            accs = Sigmoid(*self.bootstrap_sigmoid.T)(xs)
            acc_ci = tuple(float(v) for v in percentile_interval(accs))
            x_ci = tuple(float(v) for v in percentile_interval(xs))
        within = None
        if self.noise is not None and acc_ci is not None:
            within = bool((acc_ci[1] - acc_ci[0]) / 2 <= self.noise)
        return TaskPrediction(
            task=self.task, N=N, D=D, accuracy=acc, accuracy_ci=acc_ci,
            task_loss=x if self.two_step else None, task_loss_ci=x_ci if self.two_step else None,
            within_noise=within,
        )

    def describe(self) -> str:
        """A readable summary: both steps with units, the intervals' resamples and the noise."""
        s, law = self.sigmoid, get_law(self.step1.law)
        x = "task loss" if self.two_step else "LM loss"
        n_boot = 0 if self.bootstrap_sigmoid is None else len(self.bootstrap_sigmoid)
        lines = [
            f"task {self.task} (chance {self.chance:.3g}), method {self.method}: "
            f"{'two steps' if self.two_step else 'one step'}, (N, D) -> {x} -> accuracy",
            f"step 1: {law.formula.replace('L =', f'{x} =')} on the final points of {self.n_runs} runs",
            "  " + ", ".join(f"{k} = {v:.4g}" for k, v in self.step1.params.items()),
            f"step 2: accuracy = {s.floor:.4g} + ({s.ceiling:.4g} - {s.floor:.4g}) / "
            f"(1 + exp({s.k:.4g} ({x} - {s.x0:.4g}))) on {self.n_points} checkpoints, "
            f"rmse {self.sigmoid_rmse:.4f}",
            "no intervals: " + (self.step1.bootstrap_unreliable or "bootstrap 0")
            if not n_boot or self.step1.bootstrap_unreliable
            else f"95 % intervals: {n_boot} resamples of the runs, both steps refitted",
            "run-to-run spread of final accuracy: "
            + ("unknown (no reruns)" if self.noise is None else f"{self.noise:.4f} (from reruns)"),
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task,
            "chance": self.chance,
            "two_step": self.two_step,
            "method": self.method,
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
                method=str(obj.get("method", DEFAULT_METHOD)),
                noise=None if obj.get("noise") is None else float(obj["noise"]),
                n_runs=int(obj.get("n_runs", 0)),
                n_points=int(obj.get("n_points", 0)),
                sigmoid_rmse=float(obj.get("sigmoid_rmse", math.nan)),
                bootstrap_sigmoid=None if boot is None else np.asarray(boot, float).reshape(-1, 4),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed task fit: {exc}") from None


@dataclass(frozen=True)
class _Ladder:
    """The points each step reads: `table` one row per run with a final checkpoint (run, N, D, C, loss =
    the step-1 target, accuracy = final accuracy); step 2's (x, acc) and the `owner` row of `table` of
    each (-1: a run without a final checkpoint, in every bootstrap resample)."""

    table: pd.DataFrame
    x: np.ndarray
    acc: np.ndarray
    owner: np.ndarray


def _moving_average(a: np.ndarray, n: int) -> np.ndarray:
    """Running mean over the last n values (fewer at the start), as Bhagia et al.'s `moving_average`."""
    c = np.cumsum(a)
    out = c / np.arange(1, a.size + 1)
    out[n:] = (c[n:] - c[:-n]) / n
    return out


def _ladder(points: TaskPoints, method: TaskMethod) -> _Ladder:
    runs, first = np.unique(points.run, return_index=True)
    rows, xs, accs, owners = [], [], [], []
    for run in runs[np.argsort(first)]:
        idx = np.flatnonzero(points.run == run)
        idx = idx[np.argsort(points.D[idx], kind="stable")]
        finals = idx[points.final[idx]]
        if finals.size:
            last = finals[-1]
            idx = idx[points.D[idx] <= points.D[last]]
            tail = idx[-method.smooth:]
            target = float(points.x[tail].mean())
            rows.append((run, points.N[last], points.D[last], target, points.accuracy[last]))
        kept = idx[int(math.ceil(method.skip * idx.size)):] if idx.size > 1 else idx
        xs.append(_moving_average(points.x[kept], method.smooth))
        accs.append(_moving_average(points.accuracy[kept], method.smooth))
        owners.append(np.full(kept.size, len(rows) - 1 if finals.size else -1))
    table = pd.DataFrame(rows, columns=["run", "N", "D", "loss", "accuracy"])
    table.insert(3, "C", 6.0 * table["N"] * table["D"])
    return _Ladder(table, np.concatenate(xs), np.concatenate(accs), np.concatenate(owners))


def _fit_step2(
    ladder: _Ladder, chance: float, method: TaskMethod, weights: np.ndarray | None = None
) -> Sigmoid:
    x, acc = ladder.x, ladder.acc
    if method.anchor:
        x, acc = np.append(x, 0.0), np.append(acc, 1.0)
        weights = None if weights is None else np.append(weights, 1.0)
    return fit_sigmoid(x, acc, chance, free_floor=method.free_floor, weights=weights)


def step1_law(table: pd.DataFrame, method: TaskMethod) -> str:
    """The law step 1 fits: the method's where the runs identify it with a point to spare (more distinct
    (N, D) than parameters), else `STEP1_FALLBACK`; UsageError when they identify neither."""
    runs = table[["N", "D", "C", "loss"]]
    identified = Design.of(runs).laws()
    distinct = len(runs.drop_duplicates(["N", "D"]))
    for name in (method.law, STEP1_FALLBACK):
        if name in identified and distinct > len(get_law(name).param_names):
            return name
    raise UsageError(
        f"step 1 needs runs that identify law {method.law} or {STEP1_FALLBACK}: "
        f"these {distinct} distinct (N, D) settings do not ({Design.of(runs).words})"
    )


def _fit_step1(table: pd.DataFrame, method: TaskMethod) -> FitResult:
    # Bhagia et al. minimise the same objective (Huber, delta 1e-3, of log residuals) by one L-BFGS-B
    # start; on the OLMo ladder it reaches the global optimum our search finds, for all 8 tasks.
    return fit(table[["N", "D", "C", "loss"]], step1_law(table, method))


@single_threaded_blas
@checked(
    bootstrap=NON_NEGATIVE,
    seed=NON_NEGATIVE,
    method=Constraint(
        lambda v: isinstance(v, TaskMethod) or v in METHODS,
        f"must be a TaskMethod or one of {', '.join(METHODS)}",
        repr,
    ),
)
def fit_task(
    points: TaskPoints, *, bootstrap: int = 200, seed: int = 0, method: str | TaskMethod = DEFAULT_METHOD
) -> TaskFit:
    """Fit a task's accuracy along a ladder: (N, D) -> task loss (chinchilla law on each run's final
    checkpoints) -> accuracy (sigmoid on the checkpoints); 95 % intervals from `bootstrap` resamples of
    the runs, both steps refitted on each. `method`: a `TaskMethod`, or the name of one in `METHODS`.

    UsageError: fewer than `MIN_RUNS` distinct final (N, D); an accuracy that never leaves chance."""
    how = method if isinstance(method, TaskMethod) else METHODS[method]
    ladder = _ladder(points, how)
    table = ladder.table
    distinct = np.unique(settings(table["N"].to_numpy(float), table["D"].to_numpy(float))).size
    if distinct < MIN_RUNS:
        raise UsageError(
            f"task {points.task}: {distinct} distinct final (N, D) settings; give at least {MIN_RUNS} runs"
        )
    noise = rerun_noise(table)
    margin = max(CHANCE_SPREADS * noise, NO_NOISE_MARGIN) if noise is not None else NO_NOISE_MARGIN
    best = float(table["accuracy"].max())
    if best - points.chance <= margin:
        raise UsageError(
            f"task {points.task} is not yet predictable at these scales: its best final accuracy "
            f"{best:.3f} is within {margin:.3f} of chance ({points.chance:.3f})"
        )
    step1 = _fit_step1(table, how)
    sig = _fit_step2(ladder, points.chance, how)
    rmse = float(np.sqrt(np.mean((sig(ladder.x) - ladder.acc) ** 2)))
    boot = None
    if bootstrap:
        step1, boot = _bootstrap(ladder, step1, points.chance, how, bootstrap, seed)
    return TaskFit(
        task=points.task, chance=points.chance, two_step=points.task_loss is not None, step1=step1,
        sigmoid=sig, method=how.name, noise=noise, n_runs=len(table), n_points=ladder.x.size,
        sigmoid_rmse=rmse, bootstrap_sigmoid=boot,
    )


def _bootstrap(
    ladder: _Ladder, step1: FitResult, chance: float, method: TaskMethod, k: int, seed: int
) -> tuple[FitResult, np.ndarray]:
    """Refit both steps on `k` resamples of the runs: `step1` with its bootstrap (the resamples whose
    step-1 refit converged) and the sigmoids (floor, ceiling, k, x0) on those same resamples, (k', 4)."""
    law = get_law(step1.law)
    runs = prepare_runs(ladder.table[["N", "D", "C", "loss"]], law)
    problem = Problem(law, runs.X, np.log(runs.loss), step1.loss, step1.delta)
    counts = bootstrap_weights(len(ladder.table), k, seed)  # (k, runs): times each run is drawn
    thetas, ok = refit_weighted(problem, counts, np.tile(law.to_theta(step1.params), (k, 1)))
    sigmoids = np.empty((k, 4))
    for i in range(k):
        w = np.where(ladder.owner >= 0, counts[i][np.maximum(ladder.owner, 0)], 1.0)
        keep = w > 0
        part = _Ladder(ladder.table, ladder.x[keep], ladder.acc[keep], ladder.owner[keep])
        s = _fit_step2(part, chance, method, w[keep])
        sigmoids[i] = (s.floor, s.ceiling, s.k, s.x0)
    return with_bootstrap(step1, law, thetas, ok), sigmoids[ok]
