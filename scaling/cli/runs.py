"""`scaling runs INPUT [--curves] [--csv OUT]`: collect a sweep's run folders, or a tracker's runs, into a
run table (one row per run), or with --curves a curve table (one row per evaluation and LR knot)."""

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
    p.add_argument(
        "--curves",
        action="store_true",
        help="write a curve table instead: run, N, step, tokens, lr, loss, one row per evaluation of every "
        "run and one per knot of its LR schedule (loss empty), for `scaling fit --curves`",
    )
    p.add_argument("--csv", metavar="OUT", help="write the table here (atomically)")
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

    if args.curves:
        return _curves(args)
    table = collect(args.input, **source_options(args))
    own = table["C_own"].fillna(table["C"]) if "C_own" in table else table["C"]
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
    if "C_own" in table and (own < table["C"]).any():  # cooldown branches: their shared prefixes once
        print(f"compute: {own.sum():.3g} FLOPs trained ({table['C'].sum():.3g} summed over runs, counting "
              "each branch's shared prefix with its parent again)")  # fmt: skip
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        wrote(args.csv)
    return 0


def _curves(args: argparse.Namespace) -> int:
    from scaling.io import atomic_write_text
    from scaling.runs.curve_sources import collect_curves
    from scaling.units import format_quantity

    curves = collect_curves(args.input, **source_options(args))
    evals = curves["loss"].notna()
    print(f"{curves['run'].nunique()} runs in {args.input}: {int(evals.sum())} evaluations, "
          f"{int((~evals).sum())} LR-only rows")  # fmt: skip
    print(f"  {'N (params)':>11s} {'evals':>6s} {'last step':>10s} {'LR first..last':>21s}  run")
    for run, rows in curves.groupby("run", sort=False):
        lr = rows["lr"].dropna()
        shown = f"{lr.iloc[0]:.3g}..{lr.iloc[-1]:.3g}" if len(lr) else "-"
        n_evals, last = int(rows["loss"].notna().sum()), int(rows["step"].max())
        print(f"  {_cell(rows['N'].iloc[0], format_quantity):>11s} {n_evals:>6d} {last:>10d} {shown:>21s}  "
              f"{run}")  # fmt: skip
    if args.csv:
        atomic_write_text(args.csv, curves.to_csv(index=False))
        wrote(args.csv)
    return 0
