"""Runs logged by other tools: an MLflow tracking store, TensorBoard event folders, a W&B export.

`scaling.runs.table.load_runs` calls these readers when its INPUT is a tracker store (`detect`). Each reader
returns a raw run table, one row per tracker run: `run` (a readable label), `status`, every
logged parameter (MLflow params, TensorBoard hparams or a `hparams.yaml`/`config.yaml` beside the events,
W&B config) and the last logged value of every metric, under their names as logged (dotted and slash
names kept). `scaling.runs.table.load_runs` then renames them with `--map N=KEY,D=KEY,loss=METRIC` and
validates the table as it does a CSV. The whole logged curve of the loss metric goes into
`table.attrs["curves"]` (`Curves`, read through `scaling.runs.table.curve_of`), so Approach 1 and the curve
view use it as they use our own metrics.jsonl; the logged learning rate (`lr`, or `--map lr=KEY`) at
every step it was logged goes into `table.attrs["lr_series"]`, for curve tables
(`scaling.runs.curve_sources`).

Runs logged by `scaling-train train.loggers=[...]` need no map: their keys are those of summary.json
(`n_params`, `tokens`, `unique_tokens`, `val_loss`), which `DEFAULT_KEYS` maps.

The tracker packages are optional (`pip install 'scaling[trackers]'`) and imported only here, on use.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from scaling.errors import ScalingWarning, UsageError
from scaling.reference import training_flops
from scaling.runs.csvfile import read_csv
from scaling.tracking import INSTALL_HINT, STATUS_KEY, TRACKERS, flatten, mlflow_settings, mlflow_unreachable

CURVES = "curves"  # DataFrame.attrs key: learning curves of runs that have no run folder
LR_SERIES = "lr_series"  # DataFrame.attrs key: the logged LR of those runs, at every logged step
# run-table column -> the key scaling-train logs it under (summary.json's names)
DEFAULT_KEYS = {"N": "n_params", "D": "tokens", "U": "unique_tokens", "loss": "val_loss"}
TRAIN_LOSS_KEY = "train_loss"
TOKENS_KEY = "tokens"  # a metric of tokens seen, when logged, places curve points exactly
LR_KEY = "lr"  # the learning rate as scaling-train logs it (`--map lr=KEY` names another)


class Curves(dict):
    """Run label -> its learning curve (metrics.jsonl columns), kept in a run table's attrs.

    pandas deep-copies attrs on every operation; the curves are read-only, so a copy shares them."""

    def __deepcopy__(self, memo) -> Curves:
        return self


def _import(module: str, package: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise UsageError(f"reading {package} runs needs the {package} package; {INSTALL_HINT}") from None


def detect(source: str | Path) -> str | None:
    """The tracker that wrote `source` ("mlflow", "tensorboard", "wandb"), or None for a CSV run table or
    a folder of our own run folders."""
    text = str(source)
    if text.startswith(("sqlite:", "http://", "https://", "file:", "postgresql:", "mysql:")):
        return "mlflow"
    path = Path(text)
    if path.is_file():
        return "wandb" if path.suffix == ".wandb" or _is_wandb_table(path) else None
    if not path.is_dir():
        return None
    if path.name == "mlruns" or (path / "mlruns").is_dir() or (path / "0" / "meta.yaml").is_file():
        return "mlflow"
    ours, events = _scan(path)
    if ours:  # our run folders, even where scaling-train also logged to TensorBoard or W&B inside them
        return None
    if (path / "wandb").is_dir() or any(path.glob("*run-*/*.wandb")) or any(path.glob("*.wandb")):
        return "wandb"
    if (path / "runs.csv").is_file() and _is_wandb_table(path / "runs.csv"):
        return "wandb"
    return "tensorboard" if events else None


def _scan(folder: Path) -> tuple[bool, bool]:
    """(a run folder of ours lies below `folder`, a TensorBoard event file does), in one walk."""
    events = False
    for _, _, files in os.walk(folder):
        if "summary.json" in files or "metrics.jsonl" in files:
            return True, events
        events = events or any(name.startswith("events.out.tfevents.") for name in files)
    return False, events


def read_tracker(
    source: str | Path,
    tracker: str,
    column_map: Mapping[str, str] | None = None,
    experiments: Sequence[str] | None = None,
    histories: Callable[[str], bool] | None = None,
) -> pd.DataFrame:
    """The runs of one tracker store as a raw run table (see the module docstring), every run in every
    state; `column_map` ({column: logged key}) names the loss metric whose curve is kept and the N and D
    keys that place its points; `experiments` picks MLflow experiments (W&B: projects) by name;
    `histories` picks further metrics whose values at the loss's steps join the curves (downstream tasks:
    `scaling.runs.tasks`; read only when asked, an MLflow server answers one request per run and key)."""
    if tracker not in TRACKERS:
        raise UsageError(f"unknown source {tracker!r}; choose one of {', '.join(TRACKERS)}")
    keys = {**DEFAULT_KEYS, **(column_map or {})}
    reader: Callable[..., list[_Run]] = {
        "mlflow": _read_mlflow,
        "tensorboard": _read_tensorboard,
        "wandb": _read_wandb,
    }[tracker]
    with _mlflow_session(source) if tracker == "mlflow" else nullcontext():  # curves are read lazily
        runs = reader(source, experiments)
        if not runs:
            raise UsageError(f"{source}: no runs found in this {tracker} store")
        curves = Curves({r.label: curve for r in runs if (curve := r.curve(keys, histories)) is not None})
        lr_series = Curves({r.label: lr for r in runs if (lr := r.lr_series(keys)) is not None})
    table = pd.DataFrame([{"run": r.label, "status": r.status, **r.params, **r.finals} for r in runs])
    table.attrs[CURVES] = curves
    table.attrs[LR_SERIES] = lr_series
    return table


def apply_default_keys(table: pd.DataFrame, column_map: Mapping[str, str]) -> dict[str, str]:
    """`column_map` completed with scaling-train's own keys for the columns it leaves out."""
    full = dict(column_map)
    for column, key in DEFAULT_KEYS.items():
        if column not in full and column not in table and key in table:
            full[column] = key
    return full


# ---- one tracker run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """A tracker run: its label, status, parameters, last metric values, and its metric histories
    (`history(key)` -> DataFrame(step, value), read only when needed)."""

    label: str
    status: str
    params: dict
    finals: dict
    history: Callable[[str], pd.DataFrame]

    def _value(self, key: str | None) -> float:
        if key is None:
            return math.nan
        raw = self.params.get(key, self.finals.get(key))
        try:
            return float(raw)
        except (TypeError, ValueError):
            return math.nan

    def curve(
        self, keys: Mapping[str, str], histories: Callable[[str], bool] | None = None
    ) -> pd.DataFrame | None:
        """The loss metric's history as metrics.jsonl columns (step, tokens, flops, val_loss, and lr,
        train_loss and the metrics `histories` picks when logged at the loss's steps); tokens from a logged
        tokens metric or D x step / last step."""
        loss_key = keys.get("loss")
        if loss_key is None or loss_key not in self.finals:
            return None
        loss = self.history(loss_key)
        if loss.empty:
            return None
        curve = pd.DataFrame({"step": loss["step"].to_numpy(), "val_loss": loss["value"].to_numpy()})
        tokens = self.history(TOKENS_KEY) if TOKENS_KEY in self.finals else pd.DataFrame()
        if not tokens.empty:
            curve = curve.merge(tokens.rename(columns={"value": "tokens"}), on="step", how="left")
        else:
            D, last = self._value(keys.get("D")), float(curve["step"].max())
            curve["tokens"] = D * curve["step"] / last if last > 0 else math.nan
        lr = self.lr_series(keys)
        if lr is not None:
            curve = curve.merge(lr, on="step", how="left")
        curve["flops"] = training_flops(self._value(keys.get("N")), curve["tokens"])
        if TRAIN_LOSS_KEY in self.finals and loss_key != TRAIN_LOSS_KEY:
            train = self.history(TRAIN_LOSS_KEY).rename(columns={"value": "train_loss"})
            curve = curve.merge(train, on="step", how="left")
        for key in self.finals if histories else ():
            if histories(key) and key not in curve:
                curve = curve.merge(self.history(key).rename(columns={"value": key}), on="step", how="left")
        return curve.sort_values("step", kind="stable").reset_index(drop=True)


    def lr_series(self, keys: Mapping[str, str]) -> pd.DataFrame | None:
        """The logged learning rate, DataFrame(step, lr) (key `lr`, or `keys["lr"]`); None if not logged."""
        key = keys.get("lr", LR_KEY)
        if key not in self.finals:
            return None
        series = self.history(key)
        return None if series.empty else series.rename(columns={"value": "lr"})


def _history_frame(steps: Sequence[float], values: Sequence[float]) -> pd.DataFrame:
    frame = pd.DataFrame({"step": np.asarray(steps, dtype=float), "value": np.asarray(values, dtype=float)})
    return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


# ---- MLflow -----------------------------------------------------------------------------------------
MLFLOW_STATUS = {"FINISHED": "completed", "RUNNING": "running", "SCHEDULED": "running", "FAILED": "failed",
                 "KILLED": "interrupted"}


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def _mlflow_uri(source: str | Path) -> str:
    """The tracking URI of `source` (a URI, an mlruns folder or a folder holding one). A local store that
    does not exist is refused: mlflow would create an empty one (a database file, an mlruns folder)."""
    text = str(source)
    if text.startswith("sqlite:"):
        _check_sqlite(text)
        return text
    if text.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(text).path))
    elif "://" in text:
        return text
    else:
        path = Path(text).resolve()
        if path.name != "mlruns" and (path / "mlruns").is_dir():
            path = path / "mlruns"
    if not path.is_dir():
        raise UsageError(f"{source}: no such MLflow store ({path} is not a folder)")
    if not any(path.glob("*/meta.yaml")):
        raise UsageError(f"{source}: not an MLflow store (no experiment folder with a meta.yaml in {path})")
    return path.as_uri()


def _check_sqlite(uri: str) -> None:
    """An sqlite:///relative.db or sqlite:////absolute.db URI must name an existing SQLite database."""
    rest = uri.removeprefix("sqlite:").removeprefix("//").split("?")[0]
    if not rest.removeprefix("/"):
        raise UsageError(f"{uri}: an in-memory SQLite store holds no runs; name the database file")
    path = Path(rest.removeprefix("/"))  # sqlite:///a.db is a.db; sqlite:////a.db is /a.db
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise UsageError(f"{uri}: no such MLflow store ({path} does not exist)") from None
    except OSError as exc:
        raise UsageError(f"{uri}: cannot read {path} ({exc.strerror or exc})") from None
    if head != SQLITE_MAGIC:
        raise UsageError(f"{uri}: {path} is not an SQLite database")


@contextmanager
def _mlflow_session(source: str | Path) -> Iterator[None]:
    """Around every mlflow call of a read: bounded HTTP retries, a file store allowed (mlflow 3 refuses to
    open one otherwise; reading it changes nothing), and mlflow's errors as one UsageError line."""
    uri = _mlflow_uri(source)
    reason = mlflow_unreachable(uri)
    if reason is not None:
        raise UsageError(f"{uri}: MLflow tracking server unreachable ({reason})")
    _import("mlflow", "mlflow")
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_settings(file_store=uri.startswith("file:")):
            yield
    except MlflowException as exc:
        reason = mlflow_unreachable(uri)  # a server that died while its runs were read says so
        if reason is not None:
            raise UsageError(f"{uri}: MLflow tracking server stopped answering ({reason})") from None
        raise UsageError(f"{source}: {str(exc).splitlines()[0][:300]}") from None


def _read_mlflow(source: str | Path, experiments: Sequence[str] | None) -> list[_Run]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=_mlflow_uri(source))
    chosen = client.search_experiments()
    if experiments:
        by_name = {e.name: e for e in chosen}
        missing = [name for name in experiments if name not in by_name]
        if missing:
            raise UsageError(
                f"{source}: no experiment {', '.join(map(repr, missing))}; "
                f"experiments are {', '.join(sorted(by_name)) or 'none'}"
            )
        chosen = [by_name[name] for name in experiments]
    runs: list[_Run] = []
    for experiment in chosen:
        found = client.search_runs([experiment.experiment_id], max_results=50000)
        if experiments and not found:
            raise UsageError(f"{source}: experiment {experiment.name!r} has no runs")
        for run in found:
            runs.append(_mlflow_run(client, experiment.name, run, len(chosen) > 1))
    return runs


def _mlflow_run(client, experiment: str, run, prefix_experiment: bool) -> _Run:
    name = run.info.run_name or run.info.run_id
    label = f"{experiment}/{name}" if prefix_experiment else name

    def history(key: str) -> pd.DataFrame:
        points = client.get_metric_history(run.info.run_id, key)
        return _history_frame([p.step for p in points], [p.value for p in points])

    status = run.data.tags.get(STATUS_KEY) or MLFLOW_STATUS.get(run.info.status, "failed")
    return _Run(label, status, dict(run.data.params), dict(run.data.metrics), history)


# ---- TensorBoard ------------------------------------------------------------------------------------
@dataclass
class _EventFolder:
    """What one folder of TensorBoard event files holds: scalar histories by tag, hparams, status."""

    scalars: dict
    hparams: dict
    status: str

    def is_hparams_run(self) -> bool:
        """What `SummaryWriter.add_hparams` writes into a new subfolder by default (its run_name): the
        hparams, and each value of its metric_dict as a single point."""
        return bool(self.hparams) and all(len(points) <= 1 for points in self.scalars.values())


def _read_tensorboard(source: str | Path, experiments: Sequence[str] | None) -> list[_Run]:
    if experiments:
        raise UsageError("`experiments` picks MLflow experiments; a TensorBoard folder has none")
    _import("tensorboard", "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = Path(source)
    read: dict[Path, _EventFolder] = {}
    for folder in sorted({p.parent for p in root.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
        try:
            events.Reload()
        except Exception as exc:  # noqa: BLE001  (a damaged event file: name it, go on with the others)
            warnings.warn(f"{folder}: unreadable event file, skipped ({exc})", ScalingWarning, stacklevel=3)
            continue
        scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
        read[folder] = _EventFolder(scalars, _hparams(events), _tensorboard_status(events))
    for folder in list(read):  # an add_hparams subfolder belongs to the run whose events lie above it
        parent = read.get(folder.parent)
        if parent is not None and read[folder].is_hparams_run():
            child = read.pop(folder)
            parent.hparams.update(child.hparams)
            for tag, points in child.scalars.items():
                parent.scalars.setdefault(tag, points)
    runs = []
    for folder, found in read.items():
        if not found.scalars:
            continue
        params = {**_config_beside(folder, root), **found.hparams}
        finals = {tag: points[-1].value for tag, points in found.scalars.items() if points}

        def history(key: str, scalars=found.scalars) -> pd.DataFrame:
            points = scalars.get(key, [])
            return _history_frame([p.step for p in points], [p.value for p in points])

        label = str(folder.relative_to(root)) if folder != root else folder.name
        runs.append(_Run(label, found.status, params, finals, history))
    return runs


def _tensorboard_status(events) -> str:
    """The status scaling-train writes as a text summary when a run ends; a run without one is taken as
    completed (other trainers write none)."""
    tag = f"{STATUS_KEY}/text_summary"
    if tag not in events.Tags().get("tensors", []):
        return "completed"
    value = events.Tensors(tag)[-1].tensor_proto.string_val
    return value[0].decode("utf-8") if value else "completed"


def _hparams(events) -> dict:
    """The hparams plugin's values for one event folder (as torch's SummaryWriter.add_hparams and
    Lightning write them); {} when none were logged."""
    try:
        content = events.PluginTagToContent("hparams")
    except KeyError:
        return {}
    from tensorboard.plugins.hparams import plugin_data_pb2

    values: dict = {}
    for blob in content.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(blob)
        if data.WhichOneof("data") != "session_start_info":
            continue
        for name, value in data.session_start_info.hparams.items():
            kind = value.WhichOneof("kind")
            values[name] = getattr(value, kind) if kind else None
    return values


def _config_beside(folder: Path, root: Path) -> dict:
    """Parameters from a hparams.yaml (Lightning) or config.yaml / .hydra/config.yaml (Hydra) in the event
    folder or a folder above it, up to the root given."""
    for where in (folder, *folder.parents):
        for name in ("hparams.yaml", "config.yaml", ".hydra/config.yaml"):
            path = where / name
            if path.is_file():
                try:
                    return flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
                except (OSError, ValueError, yaml.YAMLError) as exc:
                    warnings.warn(f"{path}: unreadable, ignored ({exc})", ScalingWarning, stacklevel=4)
        if where == root:
            break
    return {}


# ---- W&B --------------------------------------------------------------------------------------------
WANDB_STATUS = {"finished": "completed", "running": "running", "crashed": "failed", "failed": "failed",
                "killed": "failed"}
_WANDB_META = ("Name", "State", "Notes", "User", "Tags", "Created", "Runtime", "Sweep", "ID")


def _is_wandb_table(path: Path) -> bool:
    """A CSV exported from the W&B runs table (its header starts with Name and has State)."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        with path.open(encoding="utf-8-sig") as file:  # an export saved again by a spreadsheet has a BOM
            header = file.readline()
    except (OSError, UnicodeDecodeError):
        return False
    names = [h.strip().strip('"') for h in header.split(",")]
    return bool(names) and names[0] == "Name" and "State" in names


def _read_wandb(source: str | Path, experiments: Sequence[str] | None) -> list[_Run]:
    path = Path(source)
    if experiments:
        raise UsageError("`experiments` picks MLflow experiments; give the W&B export or run folder itself")
    if path.suffix == ".wandb":
        return _read_wandb_offline([path], path)
    table = path if path.is_file() else path / "runs.csv"
    if table.is_file():
        return _read_wandb_export(table)
    return _read_wandb_offline(sorted(path.rglob("*run-*.wandb")), path)


def _read_wandb_export(path: Path) -> list[_Run]:
    """The runs table exported from the W&B UI (one row per run: Name, State, config and summary keys),
    with each run's history, when exported beside it, in history/<Name>.csv (`run.history()` or the
    API's `scan_history` written as CSV: a `_step` column and one column per metric). A history that
    cannot be read is named in a warning and its run read without a curve."""
    table = read_csv(path, "a W&B runs table")
    if "Name" not in table:
        raise UsageError(f"{path}: no Name column (expected a W&B runs table exported from the UI)")
    history_dir = path.parent / "history"
    runs = []
    for _, row in table.iterrows():
        name = str(row["Name"])
        values = {k: v for k, v in row.items() if k not in _WANDB_META and not pd.isna(v)}
        frame = pd.DataFrame()
        history_path = history_dir / f"{name}.csv"
        if history_path.is_file():
            try:
                frame = read_csv(history_path, "a W&B run history")
            except UsageError as exc:
                warnings.warn(f"{exc}; run {name} read without its curve", ScalingWarning, stacklevel=4)
        runs.append(_wandb_run(name, str(row.get("State", "finished")), values, {}, frame))
    return runs


def _read_wandb_offline(files: list[Path], source: Path) -> list[_Run]:
    """Run folders written by `wandb` itself (offline mode, or a synced run's local copy): each
    run-*.wandb transaction log, decoded with wandb's own protobuf records, no network needed."""
    _import("wandb", "wandb")
    if not files:
        raise UsageError(f"{source}: no W&B export (runs.csv) or run folders (run-*/run-*.wandb) found")
    return [run for path in files if (run := _wandb_offline_run(path)) is not None]


WANDB_LOG_HEADER = 7  # ":W&B", a 2-byte magic and a version byte, then a LevelDB-format log
LEVELDB_BLOCK = 32768
LEVELDB_RECORD_HEADER = 7  # CRC32C (4 bytes), length (2), type (1)
LEVELDB_FULL, LEVELDB_FIRST, LEVELDB_MIDDLE, LEVELDB_LAST = 1, 2, 3, 4


class _CutShort(Exception):
    """A LevelDB-format log that ends inside a record: the writer was killed, or is still writing."""


def _leveldb_records(data: bytes) -> Iterator[bytes]:
    """The records of a LevelDB-format log (the layout of wandb's .wandb files): 32 KiB blocks of
    fragments, a record split across blocks as FIRST, MIDDLE..., LAST. wandb 0.2x dropped its Python
    reader for these files (it lives in its Go core now), so the framing is read here. Raises _CutShort
    after the last whole record when the data ends inside one."""
    pos, pending = WANDB_LOG_HEADER, b""
    while pos + LEVELDB_RECORD_HEADER <= len(data):
        left = LEVELDB_BLOCK - pos % LEVELDB_BLOCK
        if left < LEVELDB_RECORD_HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        fragment = data[pos + LEVELDB_RECORD_HEADER : pos + LEVELDB_RECORD_HEADER + length]
        pos += LEVELDB_RECORD_HEADER + length
        if kind not in (LEVELDB_FULL, LEVELDB_FIRST, LEVELDB_MIDDLE, LEVELDB_LAST):
            return  # zeros past the last record: the end of what was written
        if len(fragment) < length:
            raise _CutShort
        if kind == LEVELDB_FULL:
            yield fragment
        elif kind == LEVELDB_FIRST:
            pending = fragment
        elif kind == LEVELDB_MIDDLE:
            pending += fragment
        else:
            yield pending + fragment
            pending = b""
    if pending or any(data[pos:]):  # a record begun but never finished, or a header cut in two
        raise _CutShort


def _wandb_offline_run(path: Path) -> _Run | None:
    """The run of one .wandb log, read up to its last whole record (a warning names a log cut short, as a
    killed run leaves it); None, with a warning, for a log without a single record."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    name, state, config, summary, rows = path.stem.removeprefix("run-"), "running", {}, {}, []
    count = 0
    try:
        for data in _leveldb_records(path.read_bytes()):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            count += 1
            kind = record.WhichOneof("record_type")
            if kind == "run":
                name = record.run.display_name or record.run.run_id
                config.update(_wandb_items(record.run.config.update))
            elif kind == "config":
                config.update(_wandb_items(record.config.update))
            elif kind == "history":
                rows.append(_wandb_items(record.history.item))
            elif kind == "summary":
                summary.update(_wandb_items(record.summary.update))
            elif kind == "exit":
                state = "finished" if record.exit.exit_code == 0 else "failed"
    except (_CutShort, DecodeError) as exc:
        why = "ends inside a record" if isinstance(exc, _CutShort) else "has a damaged record"
        if not count:
            warnings.warn(f"{path}: {why} before its first, skipped", ScalingWarning, stacklevel=5)
            return None
        warnings.warn(
            f"{path}: {why} (as a run killed while writing leaves it); run {name} read from the "
            f"{count} whole records before it",
            ScalingWarning,
            stacklevel=5,
        )
    if not count:
        warnings.warn(f"{path}: no records (a run killed before it wrote any), skipped", ScalingWarning,
                      stacklevel=5)  # fmt: skip
        return None
    config.pop("_wandb", None)
    return _wandb_run(name, state, flatten(config), summary, pd.DataFrame(rows))


def _wandb_items(items) -> dict:
    """W&B record items (key or nested_key, value_json) as a dict."""
    out = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        try:
            out[key] = json.loads(item.value_json)
        except ValueError:
            out[key] = item.value_json
    return out


def _wandb_run(name: str, state: str, values: dict, summary: dict, frame: pd.DataFrame) -> _Run:
    finals = {  # wandb's own bookkeeping (_step, _runtime, _timestamp, _wandb/...) left out
        k: v
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and not k.startswith("_")
    }
    if not frame.empty:
        step = frame["_step"] if "_step" in frame else pd.Series(np.arange(len(frame)), index=frame.index)
        for key in frame.columns:
            if key.startswith("_"):
                continue
            column = pd.to_numeric(frame[key], errors="coerce").dropna()
            if not column.empty:
                finals.setdefault(key, float(column.iloc[-1]))
    else:
        step = pd.Series(dtype=float)
    params = {k: v for k, v in values.items() if k not in finals}
    finals.update({k: v for k, v in values.items() if k not in params})

    def history(key: str) -> pd.DataFrame:
        if key not in frame:
            return _history_frame([], [])
        column = pd.to_numeric(frame[key], errors="coerce")
        ok = column.notna()
        return _history_frame(step[ok].to_numpy(float), column[ok].to_numpy(float))

    status = str(summary.get(STATUS_KEY) or WANDB_STATUS.get(state.lower(), "failed"))
    return _Run(name, status, params, finals, history)
