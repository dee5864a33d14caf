"""Benchmark: a scaling law from one constant-LR run per size plus cooldown branches, against the full grid.

Two designs give the final-point law's (N, D) points at the same sizes and token budgets:
- (a) the grid: one cosine run per (N, D), each trained from scratch (the baseline);
- (b) `sweep=cooldowns` (Hägele et al. 2024): per size one constant-LR parent that ends at (1 - 0.2) x the
  largest D and keeps a checkpoint at every branch point, and one wsd cooldown branch per D that starts from
  the parent's checkpoint at 0.8 D and decays (1 - sqrt) over the rest.
Each design's final points are fitted with the chinchilla law (`scaling.fitting.fit`), and each fit predicts
the same held-out cosine runs of a model twice the largest fitted size (trained once, shared). Printed: each
design's mean |relative error| on the held-out runs, its compute (the sum of `flops_own`, which counts a
parent's prefix once), `compute_ratio=` (b)/(a) and `error_gap=` (b) - (a) in percentage points. The goal
(issue 23): the same error within 0.5 points at no more than half the grid's compute.

The compute ratio depends on the D values alone: per size (b) costs 0.8 max(D) + 0.2 sum(D) against sum(D)
for (a), so it is 0.2 + 0.8 max(D)/sum(D). At four doubling D (the sweep's default D/N = 2.5-20) that is
0.63; five D spaced by about sqrt(2) (D/N = 5-20, the default here) give 0.486, and every further D lowers it.

Sizes and data as the demo's (synthetic order-1 Markov source, one wide layer, context 32), smaller so that
both designs and the held-out runs train on 2 CPU cores in well under 10 minutes; the batch size is fixed at
16 sequences in every run (a branch must share its parent's), the peak LR is the trainer's auto rule.

Run: .venv/bin/python bench/one_run_per_size.py [--out DIR] [--jobs 2]   (3-6 minutes on 2 shared cores)
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from local_sweeps import add_sweep_options, csv_values, sweep_root, train_sweeps

from scaling.fitting.procedure import fit
from scaling.runs.table import collect_runs

SIZES = (2e4, 4e4, 8e4)  # N targets of the fitted sizes (model=target)
ENDS = (5, 7, 10, 14, 20)  # D/N of the fitted points, about sqrt(2) apart
HELD_OUT_SIZE = 1.6e5  # N target of the held-out runs: twice the largest fitted size
HELD_OUT_ENDS = (5, 10, 20)  # their D/N: the fitted range's ends and middle
COOLDOWN_FRAC = 0.2  # sweeps/sweep/cooldowns.yaml's
GOAL_GAP = 0.5  # percentage points
GOAL_RATIO = 0.5
# The demo's shapes and evaluation settings (sweeps/sweep/demo.yaml), the batch size of sweep=cooldowns.
COMMON = (
    "data=synthetic", "model=target", "model.aspect=10000", "model.head_size=8", "model.n_ctx=32",
    "train.batch_size=16", "train.evals=4", "train.eval_tokens=8192", "train.seed=0",
)  # fmt: skip


@dataclass(frozen=True)
class Design:
    """One design's law and its held-out errors."""

    name: str
    compute: float  # FLOPs it trained, each shared prefix once
    runs: int
    errors: np.ndarray  # relative error of each held-out run's predicted final loss, in %

    @property
    def mean_error(self) -> float:
        return float(np.mean(np.abs(self.errors)))


def _runs(folder: Path) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = collect_runs(folder)
    if (table["status"] != "completed").any():
        raise SystemExit(
            f"error: {folder}: runs not completed: {list(table.loc[table.status != 'completed', 'run'])}"
        )
    return table.sort_values(["N", "D"], ignore_index=True)


def _design(name: str, table: pd.DataFrame, held_out: pd.DataFrame) -> Design:
    """Fit chinchilla on the design's final points (a parent is not one: it never anneals) and predict."""
    points = table[table["schedule"] != "constant"]
    result = fit(points[["N", "D", "C", "loss"]], "chinchilla")
    predicted = result.predict(N=held_out["N"].to_numpy(), D=held_out["D"].to_numpy())
    errors = 100 * (predicted / held_out["loss"].to_numpy() - 1)
    return Design(name, float(table["C_own"].sum()), len(table), errors)


def _branch_gaps(root: Path) -> pd.Series:
    """Per fitted N, the mean relative difference (%) of each branch's final loss from the grid's cosine run
    at its (N, D)."""
    grid, branches = _runs(root / "grid"), _runs(root / "cooldowns")
    pairs = branches[branches["schedule"] == "wsd"].merge(grid, on=["N", "D"], suffixes=("", "_cosine"))
    return (100 * (pairs["loss"] / pairs["loss_cosine"] - 1)).groupby(pairs["N"]).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_options(parser)
    args = parser.parse_args()
    root = sweep_root(parser, args, "one_run_per_size-")
    points = ["parent", *map(str, ENDS)]
    sweeps = {  # the longest first, so that parallel workers finish together
        "grid": [
            "train.schedule=cosine", f"model.target_params={csv_values(SIZES)}",
            f"train.tokens_per_param={csv_values(ENDS)}",
        ],
        "held_out": [
            f"model.target_params={HELD_OUT_SIZE:g}", f"train.tokens_per_param={csv_values(HELD_OUT_ENDS)}",
        ],
        "cooldowns": [
            "+sweep=cooldowns", f"model.target_params={csv_values(SIZES)}",
            f"sweep.ends=[{csv_values(ENDS)}]",
            f"sweep.point={','.join(points)}", f"sweep.cooldown_frac={COOLDOWN_FRAC}",
        ],
    }  # fmt: skip
    start = time.perf_counter()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    train_sweeps(root, sweeps, COMMON, args.jobs)
    wall = time.perf_counter() - start

    held_out = _runs(root / "held_out")
    grid = _design("grid (a)", _runs(root / "grid"), held_out)
    cooldowns = _design("cooldowns (b)", _runs(root / "cooldowns"), held_out)
    print(
        f"fitted sizes N~{csv_values(SIZES)} at D/N={csv_values(ENDS)}; "
        f"held out: N={held_out['N'].iloc[0]:.0f} at "
        f"D/N={csv_values(HELD_OUT_ENDS)} (cosine), losses {csv_values(np.round(held_out['loss'], 4))}"
    )
    for design in (grid, cooldowns):
        print(
            f"{design.name:14s} runs={design.runs:2d} compute={design.compute:.3g} FLOPs  held-out errors "
            f"{', '.join(f'{e:+.2f}%' for e in design.errors)}  mean |error|={design.mean_error:.2f}%"
        )
    gaps = ", ".join(f"N={n:.0f} {gap:+.2f}%" for n, gap in _branch_gaps(root).items())
    print(f"branch final loss vs the cosine run at the same (N, D), mean per size: {gaps}")
    ratio = cooldowns.compute / grid.compute
    gap = cooldowns.mean_error - grid.mean_error
    print(f"compute_ratio={ratio:.3f} (cooldowns / grid FLOPs; goal <= {GOAL_RATIO})")
    print(f"error_gap={gap:+.2f} (points, cooldowns - grid mean |error|; goal <= {GOAL_GAP})")
    print(f"goal {'met' if ratio <= GOAL_RATIO and gap <= GOAL_GAP else 'missed'}; trained in {wall:.0f} s")
    if args.out is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
