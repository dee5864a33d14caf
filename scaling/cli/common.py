"""What every command shares: where the runs come from, writing a result, and speaking in flags.

The library names its arguments in Python (`bootstrap`, `holdout_top`) and writes them in backticks in
its messages; each option's `dest` is that Python name, so `flag_names` maps one to the other once, from
the parser itself, and `in_flags` rewrites a message to the flags the user typed (`--bootstrap`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaling import hardware
from scaling.defaults import DEFAULT_WINDOW, ISOFLOP_TOLERANCE, PROFILE_FITS
from scaling.tracking import TRACKERS

if TYPE_CHECKING:  # pandas is imported by the commands that read runs, not by every command
    import pandas as pd

SOURCES = ("auto", "folder", "csv", *TRACKERS)
_ARGUMENT = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def add_source_options(p: argparse.ArgumentParser) -> None:
    """INPUT, --map, --source and --experiment: where the runs come from (every command that reads runs)."""
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a run-table CSV (loss and two of N, D, C), a sweep folder, or a tracker: an MLflow store "
        "(mlruns folder, sqlite:///FILE, http://HOST:PORT), a folder of TensorBoard event folders, a W&B "
        "export or run folder",
    )
    p.add_argument(
        "--map",
        dest="column_map",
        metavar="NEW=OLD,...",
        help='rename columns, e.g. "N=Model Size,C=Training FLOP"; for a tracker, name the logged keys: '
        '"N=model/params,D=tokens,loss=val/loss"',
    )
    p.add_argument(
        "--source",
        dest="tracker",
        choices=SOURCES,
        default="auto",
        help="what INPUT is (default: detected from INPUT)",
    )
    p.add_argument(
        "--experiment",
        dest="experiments",
        metavar="NAME",
        action="append",
        help="MLflow: read this experiment (repeatable; default: every experiment)",
    )


def add_input_options(p: argparse.ArgumentParser) -> None:
    """The source options and --drop-top-loss (every command that analyses runs)."""
    add_source_options(p)
    p.add_argument(
        "--drop-top-loss",
        metavar="K",
        type=int,
        default=0,
        help="leave out the K runs with the highest loss (Epoch's Chinchilla replication drops 5)",
    )


def add_params_column_option(p: argparse.ArgumentParser) -> None:
    """--params-column: which parameter count a fitted law reads (the commands that fit: fit, report)."""
    p.add_argument(
        "--params-column",
        default="N",
        choices=("N", "N_total"),
        help="the parameter count the law reads: N (non-embedding, default) or N_total (all parameters, "
        "embeddings included; a column of the run table)",
    )


def source_options(args: argparse.Namespace) -> dict[str, Any]:
    """load_runs' keyword arguments from the source options."""
    from scaling.runs.table import parse_column_map

    return {
        "column_map": parse_column_map(args.column_map),
        "tracker": None if args.tracker == "auto" else args.tracker,
        "experiments": args.experiments,
    }


def load_input(
    args: argparse.Namespace, histories: Callable[[str], bool] | None = None, checkpoints: bool = False
) -> pd.DataFrame:
    """The run table of INPUT, as `scaling.runs.table.load_runs` validates it (a tracker's runs with the
    histories of the metrics `histories` picks): one row per run (`one_row_per_run`) unless `checkpoints`,
    for a command that reads a run's earlier rows too."""
    from scaling.runs.table import load_runs, one_row_per_run

    options = source_options(args)
    table = load_runs(args.input, drop_top_loss=args.drop_top_loss, histories=histories, **options)
    return table if checkpoints else one_row_per_run(table)


def wrote(path: str | Path, what: str = "") -> None:
    """The line every command prints for each file it wrote."""
    print(f"wrote {path}{what}")


def write_json(path: str | Path | None, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` atomically (nothing when no path was asked for) and say so."""
    if path:
        from scaling.io import atomic_write_json

        atomic_write_json(path, document)
        wrote(path)


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Python argument name (each option's dest) -> what the user types: its long flag, or its metavar."""
    names = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's options
        if action.option_strings:
            names[action.dest] = max(action.option_strings, key=len)
        elif action.metavar:
            names[action.dest] = str(action.metavar)
    return names


def in_flags(message: str, flags: dict[str, str]) -> str:
    """`message` with every `argument` the command has as a flag written as that flag."""
    return _ARGUMENT.sub(lambda m: flags.get(m[1], m[0]), message)


def add_isoflop_options(p: argparse.ArgumentParser) -> None:
    """--isoflop-tolerance, --profile-fit and --window: how Approach 2 groups and fits IsoFLOP profiles."""
    p.add_argument(
        "--isoflop-tolerance",
        type=float,
        default=ISOFLOP_TOLERANCE,
        help="Approach 2: relative compute difference within one IsoFLOP profile (default %(default)g)",
    )
    p.add_argument(
        "--profile-fit",
        default="window",
        choices=PROFILE_FITS,
        help="Approach 2: fit of each IsoFLOP profile in ln N: window (a parabola through the --window "
        "sizes nearest its lowest loss), akima (minimum of an Akima interpolant, Porian et al. 2024), "
        "parabola (through every size, Hoffmann et al.; biased when far ends are not parabolic) "
        "(default %(default)s)",
    )
    p.add_argument(
        "--window",
        metavar="K",
        type=int,
        default=DEFAULT_WINDOW,
        help="Approach 2: sizes per local parabola, at least 3 (default %(default)s)",
    )


def add_hardware_options(p: argparse.ArgumentParser, cost: str) -> None:
    """--gpu and --mfu: the accelerator and utilisation that turn FLOPs into `cost` (GPU-hours, GPU-days)."""
    p.add_argument(
        "--gpu",
        dest="accelerator",
        metavar="GPU",
        default=hardware.DEFAULT_ACCELERATOR,
        help=f"accelerator for {cost}: {', '.join(hardware.ACCELERATORS)} (default %(default)s)",
    )
    p.add_argument(
        "--mfu",
        type=float,
        default=hardware.DEFAULT_MFU,
        help=f"model FLOPs utilisation for {cost}, 0-1 (default %(default)s)",
    )


def add_task_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """--accuracy, --task-loss, --no-task-loss, --chance: the tasks to fit (downstream, report)."""
    p.add_argument("--accuracy", metavar="COL", action="append", required=required,
                   help="a task's accuracy column (a fraction), or a glob of them ('eval/downstream/*'); "
                   "repeatable" + ("" if required else " (default: every column named like an accuracy, "
                                   "e.g. ..._acc, ..._len_norm)"))
    p.add_argument("--task-loss", dest="task_loss", metavar="COL", action="append",
                   help="task-loss column(s) (e.g. bits per byte of the correct answer), paired with the "
                   "accuracy of the same task (default: found by name)")
    p.add_argument("--no-task-loss", dest="pair", action="store_false",
                   help="fit every task through the LM loss (one step), even where a task loss is logged")
    p.add_argument("--chance", metavar="X|TASK=X", action="append",
                   help="chance accuracy (the sigmoid's floor), for every task or one task (repeatable; "
                   "default: by benchmark name, 0.25 for MMLU, HellaSwag, ARC, ...)")


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """`scaling.study.downstream.fit_tasks`' column options from the task options; --chance 0.25 is one
    chance for every task, --chance hellaswag=0.25 --chance piqa=0.5 one per task."""
    from scaling.errors import UsageError

    chance: float | dict[str, float] | None = None
    for value in args.chance or ():
        task, sep, number = value.rpartition("=")
        try:
            x = float(number)
        except ValueError:
            x = float("nan")
        if not 0 <= x < 1 or (sep and not task.strip()):
            raise UsageError(f"--chance {value!r} is not X or TASK=X with X in [0, 1) (e.g. 0.25)")
        if not sep and len(args.chance) > 1:
            raise UsageError("--chance X applies to every task; give it once, or TASK=X per task")
        chance = x if not sep else {**(chance or {}), task.strip(): x}
    return {"accuracy": args.accuracy, "task_loss": args.task_loss, "pair": args.pair, "chance": chance}
