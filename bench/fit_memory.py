"""Benchmark: peak memory and time of `scaling fit` on a large run table (learning curves of many runs).

Data: `--rows` points (default 100,000) drawn from the Chinchilla law with Hoffmann et al.'s published
parameters, N log-uniform in [1e7, 1e10] params, D log-uniform in [1e9, 1e12] tokens, 1 % log-normal noise
on the loss; the seed fixes them.

Ours: the fit as shipped: the global search on a sample of `scaling.fitting.solvers.SEARCH_ROWS` runs, its
starts evaluated `scaling.fitting.laws.CHUNK_ELEMENTS` numbers at a time, Newton's method on every run.
Baseline: the same code with one chunk for every start and the search on every run (the fit before:
900 starts x all rows at once, 8 L-BFGS-B refinements on all rows). Its memory grows 86 KB per row
(8.6 GB at 100,000), so it runs on `--baseline-rows` (default 20,000) and memory is compared per row.
Peak memory is what tracemalloc sees (numpy reports its arrays to it); times are of a second, untraced
fit, as CPU seconds (this machine is shared) and wall seconds. Both fits must reach the same optimum:
objectives within 1e-10 and parameters within 1e-6, relative (exit 1 otherwise).

Prints `ratio=` (baseline peak bytes per row / ours, on the same rows) and the time ratio.
Run: .venv/bin/python bench/fit_memory.py [--rows 100000] [--baseline-rows 20000] [--no-baseline]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.fitting import laws, solvers
from scaling.fitting.procedure import fit
from scaling.reference import HOFFMANN_2022


def law_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` points of the Chinchilla law with Hoffmann et al.'s parameters and 1 % noise on the loss."""
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7, 10, rows)
    D = 10 ** rng.uniform(9, 12, rows)
    loss = laws.get_law("chinchilla").predict(HOFFMANN_2022, N=N, D=D) * np.exp(rng.normal(0, 0.01, rows))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


@dataclass(frozen=True)
class Measured:
    rows: int
    peak_mb: float  # traced peak, MB
    cpu_s: float
    wall_s: float
    result: object  # FitResult

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.rows} rows, peak {self.peak_mb:.0f} MB ({self.peak_mb * 1e6 / self.rows:.0f} "
            f"bytes/row), {self.cpu_s:.2f} s CPU, {self.wall_s:.2f} s wall; objective "
            f"{self.result.objective:.12g}, converged {self.result.converged}"
        )


def measure(table: pd.DataFrame, baseline: bool = False) -> Measured:
    """One fit traced for its peak memory, then one timed; `baseline`: one chunk, search on all rows."""
    saved = laws.CHUNK_ELEMENTS, solvers.SEARCH_ROWS
    if baseline:
        laws.CHUNK_ELEMENTS = solvers.SEARCH_ROWS = sys.maxsize
    try:
        tracemalloc.start()
        fit(table)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        cpu, wall = time.process_time(), time.perf_counter()
        result = fit(table)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        laws.CHUNK_ELEMENTS, solvers.SEARCH_ROWS = saved
    return Measured(len(table), peak, cpu, wall, result)


def same_optimum(a, b) -> bool:
    """Objectives within 1e-10 and parameters within 1e-6, relative (two FitResults)."""
    return bool(
        np.isclose(a.objective, b.objective, rtol=1e-10, atol=0)
        and all(np.isclose(a.params[k], b.params[k], rtol=1e-6, atol=0) for k in a.params)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--no-baseline", action="store_true", help="measure ours only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table = law_rows(args.rows, args.seed)
    ours = measure(table)
    print(ours.line("ours"))
    if args.no_baseline:
        return 0
    small = table.iloc[: args.baseline_rows]
    ours_small, base = measure(small), measure(small, baseline=True)
    print(ours_small.line("ours"))
    print(base.line("baseline (unchunked, search on all rows)"))
    print(f"ratio={base.peak_mb / ours_small.peak_mb:.1f} (peak memory, baseline / ours, {len(small)} rows)")
    print(f"time ratio={base.cpu_s / ours_small.cpu_s:.1f} (CPU s, baseline / ours, {len(small)} rows)")
    print(
        f"baseline extrapolated to {args.rows} rows: {base.peak_mb / base.rows * args.rows / 1e3:.1f} GB "
        f"(ours measured: {ours.peak_mb / 1e3:.2f} GB)"
    )
    ok = same_optimum(base.result, ours_small.result)
    print(f"same optimum as the baseline: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
