"""`scaling runs INPUT [--csv OUT]`: collect a sweep's run folders, or a tracker's runs, into a run table."""

from __future__ import annotations

import argparse
import math

from scaling.cli.common import add_source_options, source_options, wrote


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs",
        help="collect the run folders of a sweep, or a tracker's runs, into a run table (CSV)",
        description="List every run folder (summary.json / metrics.jsonl) under INPUT at any depth, or every "
        "run of a tracker store (MLflow, TensorBoard, W&B), in every state (completed, diverged, failed, "
        "running), as one table: N params, D tokens, C FLOPs, loss (held-out, nats/token), U unique "
        "tokens, N_total (all parameters), run, status and config or logged columns.",
    )
    add_source_options(p)
    p.add_argument("--csv", metavar="OUT", help="write the run table here (atomically)")
    p.set_defaults(handler=run)


def _cell(value, fmt) -> str:
    """A table cell: '-' for a missing number (a run still running has no loss)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return fmt(number) if math.isfinite(number) else "-"


def run(args: argparse.Namespace) -> int:
    from scaling.io import atomic_write_text
    from scaling.runs.table import collect
    from scaling.units import count, format_quantity

    table = collect(args.input, **source_options(args))
    counts = table["status"].value_counts()
    print(f"{count(len(table), 'run')} in {args.input}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    print(
        f"  {'status':<10s} {'N (params)':>11s} {'D (tokens)':>11s} {'C (FLOPs)':>10s} "
        f"{'loss (nats/token)':>18s}  run"
    )
    for _, row in table.iterrows():
        print(
            f"  {row['status']:<10s} {_cell(row.get('N'), format_quantity):>11s} "
            f"{_cell(row.get('D'), format_quantity):>11s} {_cell(row.get('C'), '{:.3g}'.format):>10s} "
            f"{_cell(row.get('loss'), '{:.4f}'.format):>18s}  {row['run']}"
        )
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        wrote(args.csv)
    return 0
