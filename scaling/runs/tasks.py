"""Downstream-task columns of a run table: which columns hold a task's accuracy and its task loss, and
every checkpoint at which a run logged them.

Naming rule (what W&B, OLMo and lm-evaluation-harness logs call them). A task's *key* is its accuracy
column's name less a trailing accuracy marker (`_len_norm`, `_acc_norm`, `_acc`, `_accuracy`, `/acc`,
`/acc_norm`, `/accuracy`, ` (accuracy)`, ...) and less any folder part before the last `/`; its task
loss column is the one other column whose name, less trailing task-loss markers (`_bpb`, repeated,
`/bpb`, `_bits_per_byte`, `_task_loss`, `_loss`, `_ce`, ` (BPB)`), has the same key:

    eval/downstream/hellaswag_rc_5shot_len_norm  ->  key hellaswag_rc_5shot
    eval/downstream_bpb/hellaswag_rc_5shot_bpb_bpb  ->  key hellaswag_rc_5shot   (OLMo's W&B keys: a pair)
    hellaswag/acc_norm, hellaswag/bpb  ->  key hellaswag

`--task-loss COL` names the task-loss columns instead (paired with the accuracy of the same key; one
accuracy and one task loss pair whatever their names). Globs (`eval/downstream/*`) pick columns by
shell-style patterns; an accuracy glob leaves out the columns named like a task loss.

Checkpoints: besides a run's row (its final values) a run may have logged its tasks at earlier steps:
in its run folder's metrics.jsonl, in a tracker's history (at the steps its loss was logged; read when
`load_runs` is given `histories=task_metrics(...)`), or as several rows of one run in a CSV (a `run`
column and a `step` column, else D orders them: the W&B export of an OLMo ladder run is one such row per
evaluation). `task_checkpoints` returns them all, the last of each run marked final.
Units: N params, D tokens (seen at the checkpoint), loss nats/token; accuracy a fraction, task loss as
logged (bits per byte for OLMo).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.errors import UsageError
from scaling.runs.table import curve_of, final_checkpoints

ACCURACY_MARKERS = (
    "_len_norm", "_acc_norm", "_acc_per_char", "_acc_per_token", "_accuracy", "_acc",
    "/acc_norm", "/accuracy", "/acc", " (length-normalized accuracy)", " (accuracy)",
)
TASK_LOSS_MARKERS = ("_bpb", "/bpb", "_bits_per_byte", "_task_loss", "/task_loss", "_loss", "_ce", " (BPB)")
_GLOB = re.compile(r"[*?\[]")
# the columns of a checkpoint, besides the task columns
POINT_COLUMNS = ("run", "N", "D", "loss", "final")
# what a learning curve logs besides the tasks (metrics.jsonl columns)
CURVE_ONLY = (
    "step", "tokens", "flops", "lr", "lr_sum", "train_loss", "val_loss", "elapsed_s", "tokens_per_s",
)


@dataclass(frozen=True)
class TaskColumns:
    """One task: its name (the key of the naming rule, or the accuracy column where two share a key), its
    accuracy column and its task-loss column (None: fitted through the LM loss)."""

    task: str
    accuracy: str
    task_loss: str | None = None


def _strip(name: str, markers: Sequence[str], repeat: bool = False) -> str | None:
    """`name` less a trailing marker (all of them with `repeat`); None when it has none."""
    stripped, found = name, False
    while True:
        marker = next((m for m in markers if stripped.lower().endswith(m.lower()) and len(stripped) > len(m)),
                      None)
        if marker is None:
            return stripped if found else None
        stripped, found = stripped[: -len(marker)], True
        if not repeat:
            return stripped


def task_key(column: str) -> str:
    """The task an accuracy column belongs to: its name less the accuracy marker and the folder part."""
    return (_strip(column, ACCURACY_MARKERS) or column).rsplit("/", 1)[-1]


def accuracy_like(columns: Sequence[str]) -> list[str]:
    """The columns named like a task's accuracy (ending in an accuracy marker): what a report fits when
    it is not told which columns hold tasks."""
    return [str(c) for c in columns
            if _strip(str(c), ACCURACY_MARKERS) is not None and task_loss_key(str(c)) is None]


def task_metrics(accuracy: Sequence[str], task_loss: Sequence[str] | None = None) -> Callable[[str], bool]:
    """Which logged metrics may hold the tasks `accuracy` and `task_loss` (names or globs) name: those
    they match, and every metric named like a task loss (the naming rule pairs them later). What a tracker
    reads the histories of (`scaling.runs.table.load_runs`' `histories`)."""
    patterns = [*accuracy, *(task_loss or ())]

    def wanted(name: str) -> bool:
        return task_loss_key(name) is not None or any(
            name == p or fnmatch.fnmatchcase(name, p) for p in patterns
        )

    return wanted


def task_loss_key(column: str) -> str | None:
    """The task a column holds the task loss of, or None when it is not named like a task loss."""
    stripped = _strip(column, TASK_LOSS_MARKERS, repeat=True)
    return None if stripped is None else stripped.rsplit("/", 1)[-1]


def _unknown(name: str, columns: Sequence[str], option: str) -> UsageError:
    near = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else f"; columns are {', '.join(columns[:12])}" + (
        " ..." if len(columns) > 12 else "")
    return UsageError(f"{option} {name!r}: no such column{hint}")


def match_columns(patterns: Sequence[str], columns: Sequence[str], option: str) -> list[str]:
    """The columns named by `patterns` (exact names or shell-style globs), in pattern then table order,
    each once. UsageError for a name that is no column (with the nearest one) or a glob that matches none."""
    columns = [str(c) for c in columns]
    chosen: list[str] = []
    for pattern in patterns:
        if pattern in columns:
            found = [pattern]
        elif _GLOB.search(pattern):
            found = [c for c in columns if fnmatch.fnmatchcase(c, pattern)]
            if option == "`accuracy`":
                found = [c for c in found if task_loss_key(c) is None]
            if not found:
                raise UsageError(f"{option} {pattern!r} matches no column; columns are "
                                 f"{', '.join(columns[:12])}" + (" ..." if len(columns) > 12 else ""))
        else:
            raise _unknown(pattern, columns, option)
        chosen += [c for c in found if c not in chosen]
    return chosen


def task_columns(
    columns: Sequence[str],
    accuracy: Sequence[str],
    task_loss: Sequence[str] | None = None,
    *,
    pair: bool = True,
) -> list[TaskColumns]:
    """The tasks named by `accuracy` (column names or globs) with their task-loss columns.

    Parameters
    ----------
    columns : the run table's columns.
    accuracy : accuracy columns or globs (`--accuracy`).
    task_loss : task-loss columns or globs (`--task-loss`), paired by key; None pairs by the naming rule
        (module docstring) where one column matches.
    pair : False fits every task through the LM loss (no task loss), whatever the columns.
    """
    columns = [str(c) for c in columns]
    accuracies = match_columns(accuracy, columns, "`accuracy`")
    keys = [task_key(c) for c in accuracies]
    names = [c if keys.count(k) > 1 else k for c, k in zip(accuracies, keys, strict=True)]
    losses: dict[str, str | None] = dict.fromkeys(accuracies)
    if task_loss:
        given = match_columns(task_loss, columns, "`task_loss`")
        if len(accuracies) == 1 and len(given) == 1:
            losses[accuracies[0]] = given[0]
        else:
            for column in given:
                key = task_loss_key(column) or column.rsplit("/", 1)[-1]
                owners = [a for a, k in zip(accuracies, keys, strict=True) if k == key]
                if len(owners) != 1:
                    raise UsageError(
                        f"`task_loss` {column!r}: its task {key!r} is "
                        + ("the task of no accuracy column" if not owners else
                           f"the task of {len(owners)} accuracy columns")
                        + f" (tasks: {', '.join(dict.fromkeys(keys))}); give one accuracy with one task loss"
                    )
                losses[owners[0]] = column
    elif pair:
        for column, key in zip(accuracies, keys, strict=True):
            found = [c for c in columns if c not in accuracies and task_loss_key(c) == key]
            if len(found) > 1:
                raise UsageError(f"task {key!r}: {len(found)} columns are named like its task loss "
                                 f"({', '.join(found)}); name one with `task_loss`")
            losses[column] = found[0] if found else None
    return [TaskColumns(name, column, losses[column]) for name, column in zip(names, accuracies, strict=True)]


def run_curves(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each run's learning curve, where it has one (`scaling.runs.table.curve_of`), by run."""
    if "run" not in table:
        return {}
    curves = {}
    for run in dict.fromkeys(table["run"].astype(str)):
        curve = curve_of(table, run)
        if curve is not None and "tokens" in curve and len(curve):
            curves[run] = curve
    return curves


def logged_columns(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame]) -> list[str]:
    """The columns a task may be read from: the run table's, then those only the curves log."""
    columns = [str(c) for c in table.columns]
    for curve in curves.values():
        columns += [str(c) for c in curve.columns if str(c) not in columns and c not in CURVE_ONLY]
    return columns


def task_checkpoints(
    table: pd.DataFrame, tasks: Sequence[TaskColumns], curves: Mapping[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """Every checkpoint at which a run logged a task: columns `run, N, D, loss, final` and the tasks'
    columns (NaN where a checkpoint lacks one).

    The run table's rows are the final checkpoints (a task column the table lacks, as run folders' summaries
    do, is read from the curve's last evaluation); a run's earlier ones come from its learning curve
    (`run_curves`: metrics.jsonl or a tracker's history: rows before the last evaluation that log a task
    column, D the tokens seen then, loss the held-out loss then) or, in a CSV that lists a run several
    times, from its other rows (the last by `step`, else by D, is its final one)."""
    curves = run_curves(table) if curves is None else curves
    wanted = list(dict.fromkeys(c for t in tasks for c in (t.accuracy, t.task_loss) if c))
    rows = table[[c for c in POINT_COLUMNS if c in table and c != "final"]].copy()
    for column in wanted:
        rows[column] = table.get(column, np.nan)
    if "run" not in rows:
        rows["run"] = [f"row {i + 1}" for i in range(len(rows))]
    rows["final"] = final_checkpoints(table)  # a CSV listing a run once per checkpoint: its last is final
    earlier = []
    for i in np.flatnonzero(rows["final"].to_numpy()):
        curve = curves.get(str(rows["run"].iloc[i]))
        logs = [c for c in wanted if curve is not None and c in curve]
        if not logs:
            continue
        tokens = curve["tokens"].to_numpy(float)
        at_end = tokens == np.nanmax(tokens)
        for column in logs:  # a final value the run table lacks: the last evaluation's
            if pd.isna(rows[column].iloc[i]) and at_end.any():
                rows.iloc[i, rows.columns.get_loc(column)] = curve.loc[at_end, column].iloc[-1]
        keep = curve[logs].notna().any(axis=1).to_numpy() & ~at_end
        if keep.any():
            frame = curve.loc[keep, logs].copy()
            frame.insert(0, "run", rows["run"].iloc[i])
            frame.insert(1, "N", rows["N"].iloc[i])
            frame.insert(2, "D", tokens[keep])
            loss = curve["val_loss"].to_numpy(float) if "val_loss" in curve else np.full(len(curve), np.nan)
            frame.insert(3, "loss", loss[keep])
            frame["final"] = False
            earlier.append(frame)
    return pd.concat([rows, *earlier], ignore_index=True) if earlier else rows.reset_index(drop=True)
