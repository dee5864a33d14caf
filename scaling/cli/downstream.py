"""`scaling downstream INPUT --accuracy COL [--task-loss COL] [--json OUT]`: fit the accuracy of downstream
tasks along a ladder ((N, D) -> task loss -> accuracy), one or several tasks at once."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_input_options, add_task_options, load_input, task_options, write_json
from scaling.defaults import DOWNSTREAM_BOOTSTRAP


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "downstream",
        help="fit downstream task accuracy: (N, D) -> task loss -> accuracy, with 95 %% intervals",
        description="Fit each task's accuracy along a ladder in two steps, (N, D) -> task loss (a loss "
        "law) -> accuracy (a sigmoid up to a ceiling of at most 1), or through the LM loss when no task "
        "loss is logged; bootstrap intervals through both steps. Columns named like OLMo's W&B keys pair "
        "by themselves (eval/downstream/X_len_norm with eval/downstream_bpb/X_bpb_bpb; see "
        "docs/downstream.md).",
    )
    add_input_options(p)
    add_task_options(p, required=True)
    p.add_argument("--bootstrap", metavar="K", type=int, default=DOWNSTREAM_BOOTSTRAP,
                   help="resamples of the runs for the 95 %% intervals (default %(default)s)")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the resampling")
    p.add_argument("--method", help="how each step is fitted: a method of scaling.fitting.downstream.METHODS "
                   "(docs/downstream.md lists them; default: its DEFAULT_METHOD)")
    p.add_argument("--json", metavar="OUT",
                   help="write every task's fit as JSON (`scaling predict` reads it)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.runs.tasks import task_metrics
    from scaling.study.downstream import fit_tasks

    tasks = task_options(args)
    table = load_input(args, histories=task_metrics(args.accuracy, args.task_loss), checkpoints=True)
    result = fit_tasks(table, **tasks, bootstrap=args.bootstrap, seed=args.seed, method=args.method)
    print(result.describe())
    write_json(args.json, result.to_json())
    return 0
