"""`scaling report INPUT --out DIR`: figures (PNG and PDF) and report.md for a sweep folder or run table."""

from __future__ import annotations

import argparse

from scaling.cli.common import (
    add_input_options,
    add_isoflop_options,
    add_params_column_option,
    add_task_options,
    source_options,
    task_options,
)
from scaling.cli.fit import AUTO_HELP, POINT_LAW_CHOICES
from scaling.defaults import HOLDOUT_TOP


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="fit, allocate, label regimes, backtest, predict GPT-3 175B; write figures and report.md",
        description="Analyse the runs and write DIR/report.md with every figure the data supports "
        "(DIR/figures/*.png and *.pdf), the fit (fit.json), the run table (runs.csv) and the regime "
        "labels (regimes.csv). DIR is replaced as a whole, so re-running leaves no stale figure.",
    )
    add_input_options(p)
    add_params_column_option(p)
    p.add_argument(
        "--out", dest="out_dir", metavar="DIR", required=True, help="the report folder (created or replaced)"
    )
    p.add_argument(
        "--law",
        default="chinchilla",
        choices=POINT_LAW_CHOICES,
        help=f"law to fit (default %(default)s); {AUTO_HELP}",
    )
    p.add_argument(
        "--bootstrap",
        metavar="K",
        type=int,
        default=None,
        help="resamples for every 95 %% interval (default 1000)",
    )
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the resampling")
    p.add_argument(
        "--holdout-top",
        metavar="F",
        type=float,
        default=HOLDOUT_TOP,
        help="fraction of runs (by compute) the backtest holds out (default %(default)s)",
    )
    add_isoflop_options(p)
    add_task_options(p, required=False)
    p.add_argument("--title", help="title of the report (default: the input's name)")
    p.add_argument("--dpi", type=int, default=200, help="resolution of the PNG figures (default %(default)s)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.report.document import write_report

    options = {
        **source_options(args),
        "drop_top_loss": args.drop_top_loss,
        "law": args.law,
        "params_column": args.params_column,
        "seed": args.seed,
        "holdout_top": args.holdout_top,
        "isoflop_tolerance": args.isoflop_tolerance,
        "profile_fit": args.profile_fit,
        "window": args.window,
        "tasks": task_options(args),
    }
    if args.bootstrap is not None:  # else the report's own default, without importing it to --help
        options["bootstrap"] = args.bootstrap
    report = write_report(args.input, args.out_dir, title=args.title, dpi=args.dpi, **options)
    for name, why in report.skipped.items():
        if name.startswith("figure "):
            print(f"not drawn: {name.removeprefix('figure ')} ({why})")
    print(f"{len(report.figures)} figures (PNG and PDF) in {report.out_dir / 'figures'}")
    print(f"report: {report.markdown}")
    return 0
