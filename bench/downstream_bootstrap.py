"""Benchmark: the downstream default of 200 bootstrap resamples against 1000, in one process.

Data: the OLMo model ladder of Bhagia et al. 2024 ("Establishing Task Scaling Laws via Compute-Efficient
Model Ladders"), repository github.com/allenai/OLMo-ladder, files src/scripts/paper/data/ladder-runs/*.csv
(one W&B export per run, one row per evaluation). Not vendored: clone it and pass `--repo PATH` (a checkout
or its bare git directory). The runs 190M, 370M, 760M, 1B at 1, 2, 5, 10x Chinchilla tokens and the 1x
reruns are concatenated into one checkpoint table (a `run` column, `step`, N, D = tokens seen, `loss` = C4
loss, the task columns as logged), what `scaling downstream` reads; `--csv OUT` writes it.

Baseline: the task's 95 % accuracy interval at `--params`/`--tokens` (default OLMo 2 13B: 13.2B params,
5.0T tokens) from 1000 resamples, seed 0. Measured: the same from 200 resamples at 5 seeds. Prints
`ratio=` of the time (200 over 1000) and of the interval ends' spread: the standard deviation over seeds of
each end, and their mean distance from the baseline's ends, as fractions of the baseline's width.

Run: .venv/bin/python bench/downstream_bootstrap.py --repo PATH [--task hellaswag_val_rc_5shot]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.runs.table import load_runs
from scaling.study.downstream import fit_tasks

RUNS = "src/scripts/paper/data/ladder-runs"
SIZES = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840}  # MODEL_PARAMS
LENGTHS = ("1xC", "1xC-rerun", "2xC", "5xC", "10xC")
C4_LOSS = "eval/c4_en-validation/CrossEntropyLoss"
SEEDS = 5


def read(repo: Path, name: str) -> pd.DataFrame:
    """One run's export, from a checkout or a bare git directory."""
    path = repo / RUNS / f"{name}.csv"
    if path.is_file():
        return pd.read_csv(path)
    text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{RUNS}/{name}.csv"], capture_output=True,
                          text=True, check=True).stdout
    return pd.read_csv(io.StringIO(text))


def ladder_table(repo: Path) -> pd.DataFrame:
    """The ladder's evaluations as one checkpoint table (module docstring)."""
    frames = []
    for size, n in SIZES.items():
        for length in LENGTHS:
            name = f"{size}-{length}"
            runs = read(repo, name)
            tokens = (runs["throughput/total_tokens"] if "throughput/total_tokens" in runs
                      else runs["_step"] * runs["batch_size_in_tokens"])  # as the paper's utils.py
            tasks = runs[[c for c in runs.columns if c.startswith("eval/downstream")]]
            head = pd.DataFrame({"run": name, "N": n, "D": tokens, "step": runs["_step"],
                                 "loss": runs[C4_LOSS]})
            frames.append(pd.concat([head, tasks], axis=1))
    return pd.concat(frames, ignore_index=True)


def interval(table: pd.DataFrame, column: str, N: float, D: float, bootstrap: int, seed: int):
    start = time.perf_counter()
    fitted = fit_tasks(table, accuracy=[column], bootstrap=bootstrap, seed=seed)
    ci = fitted.predict(N, D).tasks[0].accuracy_ci
    return np.array(ci), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a clone of allenai/OLMo-ladder")
    parser.add_argument("--task", default="hellaswag_val_rc_5shot", help="OLMo task key")
    parser.add_argument("--params", type=float, default=13202396160)
    parser.add_argument("--tokens", type=float, default=5000088518656)
    parser.add_argument("--csv", type=Path, help="also write the checkpoint table here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # bootstrap refits that do not converge are left out, as the CLI says
    raw = ladder_table(args.repo)
    if args.csv:
        raw.to_csv(args.csv, index=False)
        print(f"wrote {args.csv} ({len(raw)} evaluations of {raw['run'].nunique()} runs)")
    table = load_runs(raw)
    column = f"eval/downstream/{args.task}_len_norm"
    reference, base_time = interval(table, column, args.params, args.tokens, 1000, 0)
    width = reference[1] - reference[0]
    ends, times = zip(*(interval(table, column, args.params, args.tokens, 200, s) for s in range(SEEDS)),
                      strict=True)
    ends = np.array(ends)
    print(f"task {args.task} at N={args.params:.4g}, D={args.tokens:.4g}: 1000 resamples "
          f"[{reference[0]:.4f}, {reference[1]:.4f}] in {base_time:.1f} s")
    for seed, (lo, hi) in enumerate(ends):
        print(f"  200 resamples, seed {seed}: [{lo:.4f}, {hi:.4f}] in {times[seed]:.1f} s")
    spread = ends.std(axis=0) / width
    offset = np.abs(ends - reference).mean(axis=0) / width
    print(f"ratio={np.mean(times) / base_time:.3f} (time of 200 resamples over 1000)")
    print(f"ratio={spread.max():.3f} (largest standard deviation of an interval end over {SEEDS} seeds, "
          "over the width of 1000 resamples' interval)")
    print(f"ratio={offset.max():.3f} (largest mean distance of an end from 1000 resamples' end, over its "
          "width)")


if __name__ == "__main__":
    main()
