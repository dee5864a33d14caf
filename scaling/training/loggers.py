"""Training curves in the trackers users watch: TensorBoard, MLflow, W&B (`train.loggers=[...]`).

The run folder stays the source of truth: every metrics.jsonl row is also sent to each tracker asked for,
with the resolved config and the run's size (summary.json's `n_params`, `tokens`, `unique_tokens`, ...)
as parameters, so `scaling runs` reads the tracker back without a `--map`. One tracker run per run
folder: its id is kept in the folder's `trackers.json`, and a resumed run continues the same tracker run.
A tracker that fails (not installed, server down, disk full) is dropped with one warning; it never fails
the training run.

Where each tracker writes is its own standard setting: TensorBoard event files go into the run folder
(`tensorboard --logdir runs/NAME` shows a sweep); MLflow uses MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME (default experiment `scaling`); W&B uses WANDB_PROJECT (default `scaling`),
WANDB_MODE (e.g. offline) and its files go under the run folder.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scaling.errors import UsageError
from scaling.io import atomic_write_json
from scaling.tracking import INSTALL_HINT, STATUS_KEY, TRACKERS, mlflow_settings, mlflow_unreachable

IDS_FILE = "trackers.json"
DEFAULT_PROJECT = "scaling"  # MLflow experiment / W&B project when the environment names none
_MLFLOW_BATCH = 100  # MLflow takes at most 100 params per log_batch call


def check_loggers(names: Any) -> tuple[str, ...]:
    """The tracker names of `train.loggers` (a list, or None for none); UsageError for an unknown name or
    a tracker whose package is not installed."""
    if names is None:
        return ()
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise UsageError(f"train.loggers must be a list such as [tensorboard,mlflow,wandb], got {names!r}")
    chosen = tuple(str(n) for n in names)
    for name in chosen:
        if name not in TRACKERS:
            raise UsageError(f"train.loggers: unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(name) is None:  # each tracker's package is named like it
            raise UsageError(f"train.loggers: {name} is not installed; {INSTALL_HINT}")
    return chosen


class Trackers:
    """The trackers one run logs to. Every call goes to each tracker; one that raises is dropped with a
    warning naming it, and the run goes on."""

    def __init__(self, names: Sequence[str], run_dir: Path, params: Mapping[str, Any], is_main: bool = True):
        self.run_dir = Path(run_dir)
        self._active: dict[str, _Tracker] = {}
        if not is_main or not names:
            return
        ids_path = self.run_dir / IDS_FILE
        saved = json.loads(ids_path.read_text(encoding="utf-8")) if ids_path.is_file() else {}
        flat = {k: v for k, v in params.items() if v is not None}
        for name in names:
            self._guard(name, lambda n=name: self._open(n, flat, saved.get(n)))
        ids = {name: tracker.run_id for name, tracker in self._active.items()}
        if ids and ids != {k: saved.get(k) for k in ids}:
            atomic_write_json(ids_path, {**saved, **ids})

    def _open(self, name: str, params: Mapping[str, Any], saved_id: str | None) -> None:
        self._active[name] = _OPEN[name](self.run_dir, params, saved_id)

    def _guard(self, name: str, action) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001  (any tracker failure: warn once, never fail the run)
            self._active.pop(name, None)
            warnings.warn(
                f"{name} logging stopped for {self.run_dir} ({type(exc).__name__}: {exc}); "
                "the run folder keeps every metric",
                RuntimeWarning,
                stacklevel=3,
            )

    def log(self, row: Mapping[str, Any]) -> None:
        """One metrics.jsonl row (its `step` is the x axis; None and NaN values are left out)."""
        step = int(row["step"])
        values = {
            k: float(v)
            for k, v in row.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        for name, tracker in list(self._active.items()):
            self._guard(name, lambda t=tracker: t.log(values, step))

    def finish(self, status: str) -> None:
        """Mark the tracker runs with the run's status (completed, diverged, interrupted)."""
        for name, tracker in list(self._active.items()):
            self._guard(name, lambda t=tracker: t.finish(status))
        self._active.clear()


class _Tracker:
    run_id: str

    def log(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def finish(self, status: str) -> None:
        raise NotImplementedError


class _TensorBoard(_Tracker):
    """Event files in the run folder, the run's parameters in the hparams plugin (as add_hparams writes
    them, but in the same folder rather than a new sub-run)."""

    def __init__(self, run_dir: Path, params: Mapping[str, Any], saved_id: str | None):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.run_id = saved_id or run_dir.name
        if saved_id is None:
            values = {k: v for k, v in params.items() if isinstance(v, int | float | str | bool)}
            for summary in hparams(values, {}):
                self.writer.file_writer.add_summary(summary)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, status: str) -> None:
        self.writer.add_text(STATUS_KEY, status)
        self.writer.close()


class _MLflow(_Tracker):
    """A run of the MLflow tracking store of MLFLOW_TRACKING_URI. A server gets one short health check
    first (a dead one costs a warning, not minutes of retries), and every call bounded retries."""

    def __init__(self, run_dir: Path, params: Mapping[str, Any], saved_id: str | None):
        import mlflow
        from mlflow.entities import Param

        uri = mlflow.get_tracking_uri()
        reason = mlflow_unreachable(uri)
        if reason is not None:
            raise ConnectionError(f"tracking server {uri} unreachable: {reason}")
        self.client = mlflow.MlflowClient()
        with mlflow_settings():
            if saved_id is not None:
                self.run_id = saved_id
                self.client.update_run(saved_id, status="RUNNING")
                return
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_PROJECT)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
            items = [Param(k, str(v)) for k, v in params.items()]
            for i in range(0, len(items), _MLFLOW_BATCH):
                self.client.log_batch(self.run_id, params=items[i : i + _MLFLOW_BATCH])

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with mlflow_settings():
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self, status: str) -> None:
        terminal = {"completed": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        with mlflow_settings():
            self.client.set_tag(self.run_id, STATUS_KEY, status)
            self.client.set_terminated(self.run_id, status=terminal)


class _WandB(_Tracker):
    def __init__(self, run_dir: Path, params: Mapping[str, Any], saved_id: str | None):
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
            dir=str(run_dir),
            id=saved_id,  # None: wandb makes one, kept in trackers.json for a resume
            resume="allow",
            name=run_dir.name,
            config=dict(params),
            reinit="create_new",
        )
        self.run_id = self.run.id

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self, status: str) -> None:
        self.run.summary[STATUS_KEY] = status
        self.run.finish(exit_code=0 if status in ("completed", "interrupted") else 1)


_OPEN = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}
