"""Downstream accuracy of several tasks from one run table: `fit_tasks` fits each task named by its
columns (`scaling.runs.tasks`) with `scaling.fitting.downstream.fit_task`, and `DownstreamFit.predict`
gives every task's accuracy at a new (N, D).

The chance accuracy (the sigmoid's floor) of a task is `--chance`, else that of its benchmark by name
(`KNOWN_CHANCE`: one over the answer choices), else the task is refused with a request for `--chance`.
The run-to-run spread of a task (from reruns of one (N, D)) is its noise; a prediction whose 95 %
interval's half-width is within it is "within noise" (`scaling.fitting.downstream.TaskFit.predict`).
Units: N params, D tokens, C = 6 N D FLOPs, loss nats/token, accuracy a fraction, task loss as logged.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.defaults import DOWNSTREAM_BOOTSTRAP, ISOFLOP_TOLERANCE
from scaling.errors import NON_NEGATIVE, ScalingWarning, UsageError, checked, one_of
from scaling.fitting.downstream import METHODS, TaskFit, TaskPoints, TaskPrediction, fit_task
from scaling.io import check_format, read_json
from scaling.reference import training_flops
from scaling.runs.tasks import TaskColumns, logged_columns, run_curves, task_checkpoints, task_columns
from scaling.units import format_quantity, sci

FORMAT = "scaling.downstream/1"
PREDICTION_FORMAT = "scaling.downstream_prediction/1"
# Chance accuracy of the common multiple-choice benchmarks, by the start of a task's name: one over the
# number of answer choices (MMLU, HellaSwag, ARC, OpenBookQA, SciQ 4; CommonsenseQA 5; PIQA, WinoGrande,
# BoolQ, COPA 2; SocialIQA 3), the baselines the OLMo ladder's code uses too.
KNOWN_CHANCE = {
    "mmlu": 0.25, "hellaswag": 0.25, "arc_challenge": 0.25, "arc_easy": 0.25, "arc": 0.25, "openbookqa": 0.25,
    "obqa": 0.25, "sciq": 0.25, "csqa": 0.2, "commonsense_qa": 0.2, "piqa": 0.5, "winogrande": 0.5,
    "boolq": 0.5, "copa": 0.5, "socialiqa": 1 / 3, "social_iqa": 1 / 3, "siqa": 1 / 3,
}


def chance_of(task: str, chance: float | Mapping[str, float] | None) -> float:
    """The chance accuracy of `task`: `chance` (one number for every task, or task -> number), else the
    benchmark's by name (`KNOWN_CHANCE`, longest matching prefix); UsageError when neither knows it."""
    if isinstance(chance, Mapping) and task in chance:
        return float(chance[task])
    if chance is not None and not isinstance(chance, Mapping):
        return float(chance)
    name = task.lower()
    known = [k for k in KNOWN_CHANCE if name.startswith(k)]
    if not known:
        raise UsageError(f"task {task}: its chance accuracy is unknown; give `chance` (e.g. 0.25 for four "
                         "answer choices)")
    return KNOWN_CHANCE[max(known, key=len)]


@dataclass(frozen=True)
class TaskResult:
    """One task's fit with the columns it came from and its largest run: (N, D) of the run of most
    compute and the mean final accuracy of the runs there (a fraction), to compare the fit with; `points`,
    the checkpoints it was fitted on, for figures (not saved: None when read from JSON)."""

    columns: TaskColumns
    fit: TaskFit
    largest_N: float
    largest_D: float
    largest_accuracy: float
    points: TaskPoints | None = field(default=None, repr=False, compare=False)

    @property
    def task(self) -> str:
        return self.columns.task

    def at_largest(self) -> TaskPrediction:
        """The fit's prediction at the largest run's (N, D)."""
        return self.fit.predict(self.largest_N, self.largest_D)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "columns": {"accuracy": self.columns.accuracy, "task_loss": self.columns.task_loss},
            "largest": {"N": self.largest_N, "D": self.largest_D, "accuracy": self.largest_accuracy},
            "fit": self.fit.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TaskResult:
        columns = TaskColumns(str(obj["task"]), str(obj["columns"]["accuracy"]), obj["columns"]["task_loss"])
        largest = obj["largest"]
        return cls(columns, TaskFit.from_json(obj["fit"]), float(largest["N"]), float(largest["D"]),
                   float(largest["accuracy"]))


@dataclass(frozen=True)
class DownstreamFit:
    """The accuracy laws of several tasks fitted on one ladder; `skipped` names the tasks that could not
    be fitted, with why."""

    tasks: tuple[TaskResult, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"DownstreamFit({len(self.tasks)} tasks: {', '.join(t.task for t in self.tasks)})"

    def predict(self, N: float, D: float) -> DownstreamPrediction:
        """Every task's accuracy (and task loss) at N params and D tokens, with 95 % intervals."""
        return DownstreamPrediction(
            N=float(N), D=float(D), tasks=tuple(t.fit.predict(N, D) for t in self.tasks),
            noise=tuple(t.fit.noise for t in self.tasks),
        )

    def to_json(self) -> dict[str, Any]:
        """{"format", "tasks": [{"task", "columns": {"accuracy", "task_loss"}, "largest": {"N", "D",
        "accuracy"}, "fit": scaling.task_fit/1}], "skipped": {task: why}}."""
        return {"format": FORMAT, "tasks": [t.to_json() for t in self.tasks], "skipped": dict(self.skipped)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DownstreamFit:
        obj = check_format(obj, FORMAT, "a downstream fit (`scaling downstream --json`)")
        try:
            return cls(tuple(TaskResult.from_json(t) for t in obj["tasks"]), dict(obj.get("skipped") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed downstream fit: {exc!r}") from None

    def describe(self) -> str:
        """The summary table (one row per task) and each task's fit."""
        width = max(len(name) for name in ["task", *(t.task for t in self.tasks), *self.skipped])
        header = (f"{'task':<{width}} {'runs':>5} {'points':>7}  {'steps':<18} "
                  f"{'at largest: fitted / seen':<32} noise")
        lines = [f"downstream accuracy of {len(self.tasks)} task(s):", header]
        for t in self.tasks:
            at = t.at_largest()
            steps = "2 (via task loss)" if t.fit.two_step else "1 (via LM loss)"
            where = f"({format_quantity(t.largest_N)}, {format_quantity(t.largest_D)})"
            noise = "unknown" if t.fit.noise is None else f"{t.fit.noise:.4f}"
            lines.append(f"{t.task:<{width}} {t.fit.n_runs:>5} {t.fit.n_points:>7}  {steps:<18} "
                         f"{f'{at.accuracy:.4f} / {t.largest_accuracy:.4f} {where}':<32} {noise}")
        for task, why in self.skipped.items():
            lines.append(f"{task:<{width}} not fitted: {why}")
        for t in self.tasks:
            lines += ["", t.fit.describe()]
        return "\n".join(lines)


@dataclass(frozen=True)
class DownstreamPrediction:
    """Each task's predicted accuracy at N params and D tokens (`tasks`, in the fit's order), with the
    tasks' run-to-run spreads (`noise`, None without reruns)."""

    N: float
    D: float
    tasks: tuple[TaskPrediction, ...]
    noise: tuple[float | None, ...]

    def __repr__(self) -> str:
        return f"DownstreamPrediction(N={self.N:.4g}, D={self.D:.4g}, {len(self.tasks)} tasks)"

    def to_json(self) -> dict[str, Any]:
        """{"format", "N", "D", "C", "tasks": {task: {"accuracy", "accuracy_ci", "task_loss",
        "task_loss_ci", "noise", "within_noise"}}} (intervals 95 %, null without a bootstrap)."""
        tasks = {}
        for p, noise in zip(self.tasks, self.noise, strict=True):
            tasks[p.task] = {
                "accuracy": p.accuracy,
                "accuracy_ci": None if p.accuracy_ci is None else list(p.accuracy_ci),
                "task_loss": p.task_loss,
                "task_loss_ci": None if p.task_loss_ci is None else list(p.task_loss_ci),
                "noise": noise,
                "within_noise": p.within_noise,
            }
        C = float(training_flops(self.N, self.D))
        return {"format": PREDICTION_FORMAT, "N": self.N, "D": self.D, "C": C, "tasks": tasks}

    def describe(self) -> str:
        def interval(ci: tuple[float, float] | None) -> str:
            return "" if ci is None else f" [{ci[0]:.4f}, {ci[1]:.4f}]"

        lines = [f"N = {format_quantity(self.N)} params, D = {format_quantity(self.D)} tokens, "
                 f"C = {sci(float(training_flops(self.N, self.D)))} FLOPs (95 % intervals):"]
        for p, noise in zip(self.tasks, self.noise, strict=True):
            text = f"  {p.task}: accuracy {p.accuracy:.4f}{interval(p.accuracy_ci)}"
            if p.task_loss is not None:
                text += f", task loss {p.task_loss:.4g}{interval(p.task_loss_ci)}"
            if noise is None:
                text += "; run-to-run spread unknown (no reruns)"
            else:
                verdict = {True: "within", False: "wider than", None: "no interval to compare with"}
                text += f"; interval {verdict[p.within_noise]} the run-to-run spread {noise:.4f}"
            lines.append(text)
        return "\n".join(lines)


def _numbers(points: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(points[column], errors="coerce")
    text = values.isna() & points[column].notna()
    if text.any():
        shown = str(points[column][text].iloc[0])[:40]
        raise UsageError(f"column {column!r} must be numbers; it has {shown!r}")
    return values.to_numpy(float)


def task_points(points: pd.DataFrame, columns: TaskColumns, chance: float) -> TaskPoints:
    """The checkpoints of one task (`scaling.runs.tasks.task_checkpoints`) where its accuracy and the loss
    its fit reads (task loss, else LM loss) were logged, as `TaskPoints`."""
    accuracy = _numbers(points, columns.accuracy)
    x = _numbers(points, columns.task_loss or "loss")
    keep = np.isfinite(accuracy) & np.isfinite(x)
    if not keep.any():
        raise UsageError(f"task {columns.task}: no run logged both {columns.accuracy!r} and "
                         f"{columns.task_loss or 'the LM loss'!r}")
    rows = points[keep]
    return TaskPoints(
        task=columns.task, chance=chance, N=rows["N"].to_numpy(float), D=rows["D"].to_numpy(float),
        accuracy=accuracy[keep], task_loss=None if columns.task_loss is None else x[keep],
        loss=rows["loss"].to_numpy(float) if columns.task_loss is None else None,
        final=rows["final"].to_numpy(bool), run=rows["run"].astype(str).to_numpy(),
    )


def _largest(points: TaskPoints) -> tuple[float, float, float]:
    """(N, D, mean final accuracy) of the final (N, D) of most compute (its reruns averaged)."""
    N, D, accuracy = (a[points.final] for a in (points.N, points.D, points.accuracy))
    i = int(np.argmax(training_flops(N, D)))
    top = (np.abs(N / N[i] - 1) <= ISOFLOP_TOLERANCE) & (np.abs(D / D[i] - 1) <= ISOFLOP_TOLERANCE)
    return float(N[i]), float(D[i]), float(accuracy[top].mean())


@checked(bootstrap=NON_NEGATIVE, seed=NON_NEGATIVE,
         method=one_of((None, *METHODS), f"must be one of {', '.join(METHODS)}"))
def fit_tasks(
    table: pd.DataFrame,
    *,
    accuracy: Sequence[str],
    task_loss: Sequence[str] | None = None,
    pair: bool = True,
    chance: float | Mapping[str, float] | None = None,
    bootstrap: int = DOWNSTREAM_BOOTSTRAP,
    seed: int = 0,
    method: str | None = None,
) -> DownstreamFit:
    """Fit the accuracy of every task named by `accuracy` on the runs of `table` (a validated run table,
    `scaling.runs.table.load_runs`), with its earlier checkpoints where the runs logged them.

    Parameters
    ----------
    accuracy, task_loss, pair : the task columns (`scaling.runs.tasks.task_columns`).
    chance : chance accuracy, one for every task or task -> value (default: `KNOWN_CHANCE` by name).
    bootstrap, seed : resamples of the runs for the 95 % intervals.
    method : how each step is fitted, a name of `scaling.fitting.downstream.METHODS` (default: its
        DEFAULT_METHOD).

    One task that cannot be fitted is a UsageError; of several, it is left out (`skipped`, and a
    ScalingWarning) unless none can be fitted."""
    curves = run_curves(table)
    columns = task_columns(logged_columns(table, curves), accuracy, task_loss, pair=pair)
    if isinstance(chance, Mapping):
        unknown = sorted(set(chance) - {c.task for c in columns})
        if unknown:
            raise UsageError(f"`chance` names task(s) {', '.join(unknown)} that are not fitted; tasks are "
                             f"{', '.join(c.task for c in columns)}")
    checkpoints = task_checkpoints(table, columns, curves)
    results, skipped = [], {}
    for column in columns:
        try:
            with warnings.catch_warnings(record=True) as noted:  # said again below, naming the task
                warnings.simplefilter("always", ScalingWarning)
                points = task_points(checkpoints, column, chance_of(column.task, chance))
                fitted = fit_task(points, bootstrap=bootstrap, seed=seed,
                                  **({} if method is None else {"method": method}))
        except UsageError as exc:
            if len(columns) == 1:
                raise
            skipped[column.task] = str(exc).removeprefix(f"task {column.task}: ")
            warnings.warn(f"task {column.task} left out: {skipped[column.task]}", ScalingWarning,
                          stacklevel=2)
            continue
        finally:
            for w in noted:
                text = str(w.message)
                named = text if text.startswith(f"task {column.task}") else f"task {column.task}: {text}"
                warnings.warn(named, w.category, stacklevel=2)
        results.append(TaskResult(column, fitted, *_largest(points), points=points))
    if not results:
        raise UsageError("no task could be fitted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return DownstreamFit(tuple(results), skipped)


def is_downstream_fit(path: str | Path) -> bool:
    """Whether `path` holds a downstream fit (False for anything else, readable or not)."""
    try:
        obj = read_json(path, "a downstream fit")
    except (UsageError, OSError):
        return False
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_downstream(path: str | Path) -> DownstreamFit:
    """Read a downstream fit written by `scaling downstream --json`."""
    return DownstreamFit.from_json(read_json(path, "a downstream fit JSON"))
