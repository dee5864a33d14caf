"""Run tables: read run folders or CSV files into one validated table (one row per run).

Columns: N (non-embedding parameters), D (training tokens), C (training FLOPs, 6 N D when not given),
loss (final held-out loss, nats/token), and when known U (unique tokens: the size of the training split),
N_total (all parameters, embeddings included; a fit may read it as N with params_column="N_total"),
run (folder), status, and configuration columns.

`collect_runs` lists every run folder under a sweep folder, whatever its state; `load_runs` returns only
the runs a fit may use (status completed, finite positive numbers) and warns, naming each run it drops.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from scaling.defaults import ISOFLOP_TOLERANCE
from scaling.errors import ScalingWarning, UsageError
from scaling.io import read_jsonl
from scaling.reference import params_for_compute, tokens_for_compute, training_flops
from scaling.runs.csvfile import read_csv
from scaling.runs.trackers import CURVES, apply_default_keys, detect, read_tracker
from scaling.tracking import flatten

NUMERIC = ("N", "D", "C", "loss", "U", "N_total", "C_own")  # N_total: all parameters, embeddings included
STATUSES = ("completed", "diverged", "failed", "interrupted", "running")
METRIC_COLUMNS = ("step", "tokens", "flops", "lr", "train_loss", "val_loss", "elapsed_s", "tokens_per_s")
# summary.json key -> run-table column
SUMMARY_COLUMNS = {
    "status": "status",
    "n_params": "N",
    "tokens": "D",
    "flops": "C",
    "val_loss": "loss",
    "unique_tokens": "U",
    "train_loss": "train_loss",
    "n_params_total": "N_total",
    "n_layer": "n_layer",
    "d_model": "d_model",
    "n_head": "n_head",
    "n_ctx": "n_ctx",
    "seed": "seed",
    "wall_s": "wall_s",
    "entropy_rate": "entropy_rate",  # a synthetic source's true irreducible loss, nats/token
    "flops_own": "C_own",  # FLOPs the run trained itself (a cooldown branch shares its parent's prefix)
    "schedule": "schedule",  # the LR schedule: cosine, wsd, constant, linear
    "parent": "parent",  # a cooldown branch's parent run folder
}
CONFIG_SECTIONS = ("train", "data")  # scalar settings copied from config.yaml as e.g. `train.lr`
# Tokens per parameter outside this range almost always mean a unit slip (D in billions, N in millions).
PLAUSIBLE_TOKENS_PER_PARAM = (1e-2, 1e6)
# A trained model's loss in nats/token lies below that of a uniform guess over its vocabulary, ln(vocabulary):
# 10.8 for GPT-2's 50k tokens, 12.5 for 256k. A table whose median loss is above ln(1e6) = 13.8 holds no
# trained model's nats/token but most likely perplexities (exp of the loss); the median, since a few
# diverged or barely trained runs may lie above ln(vocabulary) in nats.
MAX_NATS_PER_TOKEN = float(np.log(1e6))
# Loss columns named like these hold bits (per token or per byte) or perplexities, not nats/token.
NOT_NATS_NAMES = ("bpb", "bit", "ppl", "perplexity")
# C = 6 N D leaves out attention (2 n_layer n_ctx d_model per token and pass) and the like: a few
# percent for most models, about 1.4 % for GPT-3 175B. A C column further than this from 6 N D counts
# something else (attention of small models, forward passes only, a run's restarts) or another unit.
C_TOLERANCE = 0.05
VALIDATED = "scaling.runs.table.validated"  # DataFrame.attrs key set on the tables load_runs returns
CANNOT_READ = "cannot read"  # the note of a run whose summary.json exists but cannot be read


def final_checkpoints(table: pd.DataFrame) -> np.ndarray:
    """A boolean mask of each run's final row. A table may list a run on several rows, one per evaluation
    (a W&B export of an OLMo ladder run): its last row by `step` (else by D) is the final one; a run listed
    once, or a table without a `run` column, has every row final."""
    if "run" not in table or not table["run"].duplicated().any():
        return np.ones(len(table), bool)
    position = table[next((c for c in ("step", "_step") if c in table), "D")].to_numpy(float)
    last = pd.Series(position).groupby(table["run"].to_numpy()).transform("max").to_numpy()
    return position == last


def one_row_per_run(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with only each run's final row (`final_checkpoints`), warning how many earlier checkpoints
    were left out: the loss laws fit final losses, and a checkpoint of a run still training (its LR not yet
    decayed) is not one. `scaling fit --curves` fits every checkpoint with a learning-curve law."""
    final = final_checkpoints(table)
    if final.all():
        return table
    warnings.warn(
        f"{int((~final).sum())} rows are earlier checkpoints of {int(final.sum())} runs listed on several "
        "rows: the loss laws use each run's last row (`scaling fit --curves` fits every checkpoint)",
        ScalingWarning,
        stacklevel=2,
    )
    return table[final].reset_index(drop=True)


def curve_of(table: pd.DataFrame, run: str) -> pd.DataFrame | None:
    """The learning curve of `run` (a value of the table's `run` column): from the table's tracker curves,
    else from the run folder's metrics.jsonl; None when it has neither."""
    curves = table.attrs.get(CURVES)
    if curves and run in curves:
        return curves[run]
    if (Path(run) / "metrics.jsonl").is_file():
        return read_metrics(run)
    return None


def parse_column_map(text: str | None) -> dict[str, str]:
    """'N=Model Size,C=Training FLOP' -> {'N': 'Model Size', 'C': 'Training FLOP'} (new name = old name)."""
    if not text:
        return {}
    mapping = {}
    for item in text.split(","):
        new, sep, old = item.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise UsageError(
                f'--map entry {item!r} is not NEW=OLD (e.g. --map "N=Model Size,C=Training FLOP")'
            )
        mapping[new.strip()] = old.strip()
    return mapping


# ---- run folders -----------------------------------------------------------------------------------
def _read_run(folder: Path, names: set[str]) -> dict:
    row: dict = {"run": str(folder)}
    summary_path = folder / "summary.json"
    if "summary.json" in names:
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
        except OSError as exc:  # no permission, an I/O error: the run may well have finished
            row.update(status="failed", note=f"{CANNOT_READ} summary.json ({exc.strerror or exc})")
            summary = {}
        except ValueError as exc:
            row.update(status="failed", note=f"unreadable summary.json ({exc})")
            summary = {}
        for key, column in SUMMARY_COLUMNS.items():
            if key in summary:
                row[column] = summary[key]
        row.setdefault("status", "failed")
    else:
        row.update(status="running", note="no summary.json yet")
    config_path = folder / "config.yaml"
    if "config.yaml" in names:
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (OSError, ValueError, yaml.YAMLError):
            config = {}
        if isinstance(config, dict):
            for section in CONFIG_SECTIONS:
                row.update(flatten(config.get(section), f"{section}."))
    return row


@dataclass
class _Walk:
    """What a walk of a sweep folder found: run folders with their file names, and what it could not read
    or did not follow (each named in a warning)."""

    runs: list[tuple[Path, set[str]]] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)  # (device, inode) of every folder walked
    links: list[Path] = field(default_factory=list)  # symlinked folders still to follow
    followed: list[str] = field(default_factory=list)
    not_followed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def walk(self, top: Path) -> None:
        """Depth first, in name order, through real folders; symlinked folders are queued in `links`."""
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except FileNotFoundError:
                continue  # removed since its parent was listed
            except OSError as exc:
                self.unreadable.append(f"{folder} ({exc.strerror or exc})")
                continue
            names = {e.name for e in entries if not e.is_dir()}
            if "summary.json" in names or "metrics.jsonl" in names:
                self.runs.append((folder, names))
            below = []
            for entry in entries:
                if entry.name.startswith("."):  # .hydra, .submitit: job files, not runs
                    continue
                if entry.is_symlink():
                    self.links.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    try:
                        key = _identity(entry.stat(follow_symlinks=False))
                    except OSError as exc:  # a folder that lists its names but lets no one in
                        self.unreadable.append(f"{entry.path} ({exc.strerror or exc})")
                        continue
                    if key not in self.seen:  # a bind mount can show one folder twice
                        self.seen.add(key)
                        below.append(Path(entry.path))
            stack.extend(reversed(below))

    def follow_links(self) -> None:
        """Follow each symlinked folder once: a link to a folder already walked (a loop, or a second
        link to one run) is not followed again, so no run is counted twice."""
        while self.links:
            link = self.links.pop(0)
            try:
                info = link.stat()
            except OSError as exc:
                why = "dangling" if exc.errno == errno.ENOENT else exc.strerror
                self.not_followed.append(f"{link} ({why})")
                continue
            if not stat.S_ISDIR(info.st_mode):
                continue  # a linked file (a summary.json kept elsewhere) is read like any file
            if _identity(info) in self.seen:
                self.not_followed.append(f"{link} (its folder is already collected)")
                continue
            self.seen.add(_identity(info))
            self.followed.append(f"{link} -> {os.path.realpath(link)}")
            self.walk(link)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def collect_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """Every run folder (one holding summary.json or metrics.jsonl) under `sweep_dir`, at any depth, in
    every state; hidden folders (.hydra, .submitit) are skipped. A folder without summary.json is
    `running`; one with an unreadable summary is `failed` (column `note` says why).

    Nothing is skipped silently: folders that cannot be read (no permission) and symlinked folders are
    named in a ScalingWarning. Symlinked folders are followed, each target once (no loops, no run
    counted twice)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder of runs")
    found = _Walk(seen={_identity(root.stat())})
    found.walk(root)
    found.follow_links()
    rows = [_read_run(folder, names) for folder, names in found.runs]
    unreadable = found.unreadable + [
        f"{row['run']} ({row['note']})" for row in rows if row.get("note", "").startswith(CANNOT_READ)
    ]
    for what, names in (
        ("unreadable folder(s) or run file(s), whose runs are missing or marked failed", unreadable),
        ("symlinked folder(s) not followed", found.not_followed),
        ("symlinked folder(s) followed", found.followed),
    ):
        if names:
            warnings.warn(f"{len(names)} {what}: {_name_rows(names)}", ScalingWarning, stacklevel=2)
    if not rows:
        raise UsageError(f"{root}: no run folders (folders with summary.json or metrics.jsonl) found")
    # object columns: a folder name in another encoding (surrogates) is kept as it is; pandas' Arrow-backed
    # strings (used when pyarrow is installed, e.g. with mlflow) cannot hold it
    return _tidy(pd.DataFrame(rows, dtype=object))


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numbers (unreadable ones NaN), C = 6 N D where missing, the run-table columns first.
    Columns of paths and notes stay Python objects (see collect_runs); the others get their natural dtype."""
    for column in table.columns.difference(["run", "note"]):
        table[column] = table[column].infer_objects()
    for column in NUMERIC:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    if {"N", "D"} <= set(table):
        computed = training_flops(table["N"], table["D"])
        table["C"] = table["C"].fillna(computed) if "C" in table else computed
    first = [c for c in ("N", "D", "C", "loss", "U", "run", "status") if c in table]
    return table[first + [c for c in table.columns if c not in first]]


def collect(
    source: str | Path,
    column_map: Mapping[str, str] | None = None,
    tracker: str | None = None,
    experiments: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every run of a sweep folder or tracker store, in every state, with the run-table columns (renamed
    by `column_map`), unvalidated: what `scaling runs` lists. A CSV run table is already one: refused."""
    if tracker in (None, "auto", "csv") and Path(source).is_file() and detect(source) is None:
        raise UsageError(f"{source}: not a folder of runs (a CSV file is a run table already)")
    table, column_map = read_source(source, column_map, tracker, experiments)
    return _tidy(_rename(table, column_map, f"{source}: "))


# What a column is called in tables found in the wild (lower case, letters only) -> the quantity it holds.
_COLUMN_WORDS = {"N": ("param", "modelsize"), "D": ("token",), "C": ("flop", "compute"), "loss": ("loss",)}


def _guess_map(columns: Sequence) -> str:
    """A `--map` for the columns a table lacks, from the names it has ('params,tokens' -> N=params,D=tokens);
    '' when none looks like one."""
    guesses = {}
    for new, words in _COLUMN_WORDS.items():
        if new in columns:
            continue
        for column in map(str, columns):
            letters = "".join(c for c in column.lower() if c.isalpha())
            if column not in guesses.values() and any(w in letters for w in words):
                guesses[new] = column
                break
    return ",".join(f"{new}={old}" for new, old in guesses.items())


def _rename(table: pd.DataFrame, column_map: Mapping[str, str], where: str) -> pd.DataFrame:
    for new, old in column_map.items():
        if old not in table.columns:
            raise UsageError(
                f"{where}--map {new}={old}: no column {old!r}; "
                f"columns are {', '.join(map(str, table.columns))}"
            )
        table = table.rename(columns={old: new})
    return table


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The evaluations of one run (metrics.jsonl; a torn last line is skipped); empty if none yet."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    try:
        return pd.DataFrame(list(read_jsonl(path)))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ---- CSV and validation ----------------------------------------------------------------------------
def _labels(table: pd.DataFrame) -> pd.Series:
    rows = pd.Series([f"row {i + 1}" for i in range(len(table))], index=table.index)
    if "run" in table:  # a run without a name is named by its row (pandas keeps NaN through astype(str))
        return table["run"].map(str).where(table["run"].notna(), rows)
    return rows


def _name_rows(labels, limit: int = 5) -> str:
    labels = list(labels)
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def _to_numbers(table: pd.DataFrame, column: str, where: str) -> pd.Series:
    raw = table[column]
    values = pd.to_numeric(raw, errors="coerce")
    text = values.isna() & raw.notna()
    if text.any():  # only cells that did not parse are looked at as text (str of 100,000 floats takes s)
        text &= raw.astype(str).str.strip() != ""
    if text.any():
        i = int(np.flatnonzero(text.to_numpy())[0])
        raise UsageError(
            f"{where}column {column!r} must be numbers; "
            f"{_labels(table).iloc[i]} has {str(raw.iloc[i])[:40]!r}"
        )
    return values.astype(float)


def read_source(
    source: str | Path,
    column_map: Mapping[str, str] | None = None,
    tracker: str | None = None,
    experiments: Sequence[str] | None = None,
    histories: Callable[[str], bool] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every run of `source`, in every state, before renaming and validation, and the column map to
    apply: a folder of run folders, a CSV run table, or a tracker store (`scaling.runs.trackers`; `tracker`
    None detects which). Tracker runs logged by scaling-train need no map."""
    path = Path(source)
    column_map = dict(column_map or {})
    if tracker in (None, "auto"):
        tracker = detect(source)
    if tracker not in (None, "folder", "csv"):
        table = read_tracker(source, tracker, column_map, experiments, histories)
        return table, apply_default_keys(table, column_map)
    if experiments:
        raise UsageError("`experiments` picks the experiments of an MLflow store; this input is not one")
    if path.is_dir():
        return collect_runs(path), column_map
    if path.exists():
        return read_csv(path), column_map
    raise UsageError(f"{path}: no such file or folder")


def load_runs(
    source: str | Path | pd.DataFrame,
    column_map: Mapping[str, str] | None = None,
    drop_top_loss: int = 0,
    tracker: str | None = None,
    experiments: Sequence[str] | None = None,
    histories: Callable[[str], bool] | None = None,
) -> pd.DataFrame:
    """The usable runs of a CSV run table, a sweep folder, a tracker store or a DataFrame.

    Parameters
    ----------
    source : CSV path (columns loss and any two of N params, D tokens, C FLOPs; optional U unique
        tokens, run, status), a folder of run folders, a tracker store (an MLflow `mlruns` folder,
        `sqlite:///...` or `http://...` URI, a folder of TensorBoard event folders, a W&B export or run
        folder), or a DataFrame with those columns.
    column_map : {new: old} renames before validation, e.g. {"N": "Model Size", "C": "Training FLOP"};
        for a tracker, old names are the logged parameter and metric keys.
    drop_top_loss : drop this many runs with the highest loss (Besiroglu et al. drop 5 of Chinchilla's).
    tracker : "mlflow", "tensorboard", "wandb", "folder" or "csv"; None detects it from `source`.
    experiments : MLflow experiment names to read (default: all).
    histories : for a tracker, which further metrics' histories join the runs' curves
        (`scaling.runs.trackers.read_tracker`).

    Returns a DataFrame with N, D, C, loss first (then U, run, status, ...), only rows with status
    `completed` (when a status is given), not trained at a constant LR (when a schedule is given: a
    cooldown branch's parent), and finite positive numbers; every other row is named in a
    ScalingWarning. UsageError when the input is unreadable or no run is usable.
    """
    where = ""
    # A table this function returned is validated again (it may have been edited) but not warned about
    # again: fit, backtest and allocate each re-check the table the CLI already loaded.
    quiet = isinstance(source, pd.DataFrame) and bool(source.attrs.get(VALIDATED))

    def warn(message: str) -> None:
        if not quiet:
            warnings.warn(message, ScalingWarning, stacklevel=3)

    if isinstance(source, pd.DataFrame):
        table = source.copy()
    else:
        where = f"{source}: "
        table, column_map = read_source(source, column_map, tracker, experiments, histories)
    table = _rename(table, column_map or {}, where)
    if "loss" not in table or sum(c in table for c in ("N", "D", "C")) < 2:
        raise UsageError(
            f"{where}needs columns loss and two of N, D, C "
            f"(found {', '.join(map(str, table.columns)) or 'none'}); "
            "rename them with `column_map`, e.g. "
            + (_guess_map(table.columns) or "N=Model Size,C=Training FLOP")
        )
    if table.empty:
        raise UsageError(f"{where}no runs (the table has a header but no rows)")
    table = table.reset_index(drop=True)
    for column in NUMERIC:
        if column in table:
            table[column] = _to_numbers(table, column, where)
    given_c = all(c in table for c in ("N", "D", "C"))
    if "N" not in table:
        table["N"] = params_for_compute(table["C"], table["D"])
    elif "D" not in table:
        table["D"] = tokens_for_compute(table["C"], table["N"])
    elif "C" not in table:
        table["C"] = training_flops(table["N"], table["D"])
    labels = _labels(table)
    if "run" in table:
        table["run"] = labels  # readers of the run folders (curves) take it as a path: a string

    keep = pd.Series(True, index=table.index)
    if "status" in table:
        statuses = table["status"].map(str)  # a missing status is 'nan', and excluded like any other
        bad = statuses != "completed"
        for status in sorted(set(statuses[bad])):
            rows = bad & (statuses == status)
            warn(f"excluded {int(rows.sum())} run(s) with status {status}: {_name_rows(labels[rows])}")
        keep &= ~bad
    if "schedule" in table:  # a constant-LR run (a cooldown parent) never annealed: its last loss is no final
        constant = keep & (table["schedule"].map(str) == "constant")
        if constant.any():
            warn(
                f"excluded {int(constant.sum())} run(s) trained at a constant LR (not annealed, so their "
                f"last loss is no final loss; their curves serve curve-table fits): "
                f"{_name_rows(labels[constant])}"
            )
            keep &= ~constant
    values = table[["N", "D", "C", "loss"]].to_numpy(float)
    invalid = keep & ~pd.Series(np.all(np.isfinite(values) & (values > 0), axis=1), index=table.index)
    if invalid.any():
        warn(
            f"excluded {int(invalid.sum())} run(s) with missing, NaN, infinite or non-positive "
            f"N, D, C or loss: {_name_rows(labels[invalid])}"
        )
        keep &= ~invalid
    if "U" in table:
        bad_u = keep & table["U"].notna() & ~(np.isfinite(table["U"]) & (table["U"] > 0))
        if bad_u.any():
            warn(f"ignored non-positive or infinite U (unique tokens) of {_name_rows(labels[bad_u])}")
            table.loc[bad_u, "U"] = math.nan
    table = table[keep]
    if table.empty:
        raise UsageError(f"{where}no usable runs: every run was excluded (see the warnings above)")
    if drop_top_loss:
        if drop_top_loss < 0 or drop_top_loss >= len(table):
            raise UsageError(f"`drop_top_loss` must be between 0 and {len(table) - 1}, got {drop_top_loss}")
        table = table.drop(table["loss"].nlargest(drop_top_loss).index)
    _check_units(table, _labels(table), warn)
    _check_loss_units(table, (column_map or {}).get("loss", "loss"), warn)
    if given_c:
        _check_compute(table, _labels(table), warn)
    repeated = table.duplicated(subset=[c for c in NUMERIC if c in table], keep="first")
    if repeated.any():  # the same run listed twice (a pasted row, a copied run folder) weighs twice in a fit
        warn(
            f"{int(repeated.sum())} run(s) repeat another run's N, D, C and loss exactly and count twice in "
            f"a fit; remove them if they are copies: {_name_rows(_labels(table)[repeated])}"
        )
    first = [c for c in ("N", "D", "C", "loss", "U", "run", "status") if c in table]
    table = table[first + [c for c in table.columns if c not in first]].reset_index(drop=True)
    table.attrs[VALIDATED] = True
    return table


def _check_units(table: pd.DataFrame, labels: pd.Series, warn) -> None:
    ratio = table["D"] / table["N"]
    low, high = PLAUSIBLE_TOKENS_PER_PARAM
    for mask, hint in (
        (ratio < low, "is D given in billions or millions of tokens?"),
        (ratio > high, "is N given in millions or billions of parameters?"),
    ):
        if mask.any():
            warn(
                f"implausible tokens per parameter D/N = {ratio[mask].iloc[0]:.3g} "
                f"for {_name_rows(labels[mask])}; {hint} (N must be parameters, D tokens, C FLOPs)"
            )


def _check_loss_units(table: pd.DataFrame, source_name: str, warn) -> None:
    """Warn when the losses look like perplexities or bits rather than nats/token (by value, by name)."""
    middle = float(table["loss"].median())
    if middle > MAX_NATS_PER_TOKEN:
        warn(
            f"a median loss of {middle:.4g} cannot be nats/token of trained models (a uniform guess over a "
            f"million-token vocabulary loses {MAX_NATS_PER_TOKEN:.3g}): are they perplexities? "
            "Give ln(perplexity)"
        )
    elif any(word in source_name.lower() for word in NOT_NATS_NAMES):
        warn(
            f"the loss column {source_name!r} is named like bits or a perplexity; the laws read nats/token "
            "(bits x ln 2 = nats; ln(perplexity) = nats)"
        )


def _check_compute(table: pd.DataFrame, labels: pd.Series, warn) -> None:
    """Warn when a given C disagrees with 6 N D by more than C_TOLERANCE (laws in N and D read C = 6ND)."""
    ratio = table["C"] / training_flops(table["N"], table["D"])
    off = (ratio - 1).abs() > C_TOLERANCE
    if off.any():
        worst = float(ratio[off].iloc[int(np.argmax(np.abs(np.log(ratio[off]))))])
        warn(
            f"C differs from 6 N D by more than {C_TOLERANCE:.0%} for {int(off.sum())} run(s) (up to a "
            f"factor {worst:.3g}): {_name_rows(labels[off])}; the laws in N and D read 6 N D, kaplan_c "
            "reads C. Check that C counts training FLOPs of the same N and D"
        )


def compute_frontier(table: pd.DataFrame) -> pd.DataFrame:
    """The compute-efficient frontier: runs with a lower loss than every run of less compute (C order)."""
    ordered = table.sort_values(["C", "loss"], kind="stable")
    best_before = ordered["loss"].cummin().shift(1, fill_value=np.inf)
    return ordered[ordered["loss"] < best_before].reset_index(drop=True)


def value_groups(
    values: Sequence[float] | np.ndarray, tolerance: float = ISOFLOP_TOLERANCE
) -> list[np.ndarray]:
    """Indices of the values within `tolerance` (relative) of their group's smallest, groups ascending:
    the runs of one IsoFLOP budget (values C), of one model size (N) or of one token budget (D)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    groups, start = [], 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] > ordered[start] * (1 + tolerance):
            groups.append(order[start:i])
            start = i
    return groups


def series_groups(table: pd.DataFrame, by: str, across: str, min_points: int = 2) -> list[pd.DataFrame]:
    """Runs sharing one value of `by` (within 1 %, as runs share an IsoFLOP budget) that span at least
    `min_points` distinct values of `across`, e.g. the runs of one token budget D across model sizes N;
    sorted by `by`, then `across`."""
    groups = []
    for rows in value_groups(table[by].to_numpy(float)):
        group = table.iloc[rows].sort_values(across)
        if len(value_groups(group[across].to_numpy(float))) >= min_points:
            groups.append(group)
    return groups
