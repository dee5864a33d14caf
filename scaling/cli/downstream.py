"""`scaling downstream INPUT --accuracy COL [--task-loss COL] [--json OUT]`: fit the accuracy of downstream
tasks along a ladder ((N, D) -> task loss -> accuracy), one or several tasks at once."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_input_options, load_input, write_json
from scaling.defaults import DOWNSTREAM_BOOTSTRAP


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "downstream",
        help="fit downstream task accuracy: (N, D) -> task loss -> accuracy, with 95 %% intervals",
        description="Fit each task's accuracy along a ladder in two steps, (N, D) -> task loss (a loss "
        "law) -> accuracy (a sigmoid from chance up), or through the LM loss when no task loss is logged; "
        "bootstrap intervals through both steps. Columns named like OLMo's W&B keys pair by themselves "
        "(eval/downstream/X_len_norm with eval/downstream_bpb/X_bpb_bpb; see docs/downstream.md).",
    )
    add_input_options(p)
    p.add_argument("--accuracy", metavar="COL", action="append", required=True,
                   help="a task's accuracy column (a fraction), or a glob of them ('eval/downstream/*'); "
                   "repeatable")
    p.add_argument("--task-loss", dest="task_loss", metavar="COL", action="append",
                   help="task-loss column(s) (e.g. bits per byte of the correct answer), paired with the "
                   "accuracy of the same task (default: found by name)")
    p.add_argument("--no-task-loss", dest="pair", action="store_false",
                   help="fit every task through the LM loss (one step), even where a task loss is logged")
    p.add_argument("--chance", metavar="X|TASK=X", action="append",
                   help="chance accuracy (the sigmoid's floor), for every task or one task (repeatable; "
                   "default: by benchmark name, 0.25 for MMLU, HellaSwag, ARC, ...)")
    p.add_argument("--bootstrap", metavar="K", type=int, default=DOWNSTREAM_BOOTSTRAP,
                   help="resamples of the runs for the 95 %% intervals (default %(default)s)")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the resampling")
    p.add_argument("--json", metavar="OUT",
                   help="write every task's fit as JSON (`scaling predict` reads it)")
    p.set_defaults(handler=run)


def parse_chance(values: list[str] | None) -> float | dict[str, float] | None:
    """--chance 0.25 -> 0.25; --chance hellaswag=0.25 --chance piqa=0.5 -> {task: value}."""
    from scaling.errors import UsageError

    if not values:
        return None
    per_task: dict[str, float] = {}
    for value in values:
        task, sep, number = value.rpartition("=")
        try:
            x = float(number)
        except ValueError:
            x = float("nan")
        if not 0 <= x < 1 or (sep and not task.strip()):
            raise UsageError(f"--chance {value!r} is not X or TASK=X with X in [0, 1) (e.g. 0.25)")
        if not sep:
            if len(values) > 1:
                raise UsageError("--chance X applies to every task; give it once, or TASK=X per task")
            return x
        per_task[task.strip()] = x
    return per_task


def run(args: argparse.Namespace) -> int:
    from scaling.study.downstream import fit_tasks

    chance = parse_chance(args.chance)
    table = load_input(args)
    result = fit_tasks(
        table, accuracy=args.accuracy, task_loss=args.task_loss, pair=args.pair, chance=chance,
        bootstrap=args.bootstrap, seed=args.seed,
    )
    print(result.describe())
    write_json(args.json, result.to_json())
    return 0
