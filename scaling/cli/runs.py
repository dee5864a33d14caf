"""`scaling runs SWEEP_DIR [--csv OUT]`: collect a sweep's run folders into a run table."""

from __future__ import annotations

import argparse
import math


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs",
        help="collect the run folders of a sweep into a run table (CSV)",
        description="List every run folder (summary.json / metrics.jsonl) under SWEEP_DIR at any depth, in "
        "every state (completed, diverged, failed, running), as one table: N params, D tokens, C FLOPs, "
        "loss (held-out, nats/token), U unique tokens, N_total (all parameters), run, status and config "
        "columns.",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep folder (Hydra multirun or SLURM output)")
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
    from scaling.runs import collect_runs
    from scaling.units import format_quantity

    table = collect_runs(args.sweep_dir)
    counts = table["status"].value_counts()
    print(f"{len(table)} runs under {args.sweep_dir}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
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
        print(f"wrote {args.csv}")
    return 0
