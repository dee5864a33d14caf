"""Sweep launchers' overhead: one sweep of tiny runs through the basic and the local parallel launcher.

For each launcher, prints its wall time (the whole `scaling-train -m` command, Python start included)
divided by the sum of its runs' own training time (`wall_s` in each summary.json), then the parallel
launcher's wall time divided by the basic one's, both measured here, on this machine, in one go.

Targets: basic overhead ratio <= 1.10; parallel wall <= 0.65 x basic wall on 2 cores. The parallel gain
is 2 / (the speedup of one run on 2 threads over 1 thread): large for tiny models (tiny_30k: about 0.5),
smaller as matrices grow (tiny_100k measured 0.46 to 0.70 on a busy 2-core machine).

    python bench/sweep_overhead.py [--runs 8] [--model tiny_30k] [--tokens 600k] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
LAUNCHERS = ("basic", "local")  # the baseline first


def sweep(launcher: str, runs: int, model: str, tokens: str, sweep_dir: Path) -> tuple[float, float]:
    """(wall seconds of the whole sweep command, sum of its runs' own wall_s seconds)."""
    seeds = ",".join(str(s) for s in range(runs))  # seeds as the axis: runs of equal length
    args = [
        "-m",
        f"model={model}",
        f"train.tokens={tokens}",
        f"train.seed={seeds}",
        "train.batch_size=8",
        "train.evals=1",
        "train.eval_tokens=4096",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each launcher sets threads
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "scaling-train"), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: the {launcher} sweep failed:\n{proc.stderr[-3000:]}")
    summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert len(summaries) == runs and all(s["status"] == "completed" for s in summaries)
    return wall, sum(s["wall_s"] for s in summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs in the sweep (default 8)")
    parser.add_argument("--model", default="tiny_30k", help="model preset of every run (default tiny_30k)")
    parser.add_argument("--tokens", default="600k", help="training tokens D of every run (default 600k)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="sweeps per launcher, interleaved; the fastest counts"
    )
    args = parser.parse_args()
    print(f"{args.runs} runs of {args.model} on {args.tokens} tokens, {os.cpu_count()} CPU cores")
    tries: dict[str, list[tuple[float, float]]] = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):  # interleaved, so that a busy spell of the machine hits both
            for name in LAUNCHERS:
                tries[name].append(sweep(name, args.runs, args.model, args.tokens, Path(tmp) / f"{name}{i}"))
    results = {name: min(times) for name, times in tries.items()}
    for name, (wall, own) in results.items():
        print(f"{name:5s} launcher: wall {wall:6.1f} s, runs' own {own:6.1f} s, wall/own {wall / own:.3f}")
    parallel = results["local"][0] / results["basic"][0]
    print(f"basic overhead ratio={results['basic'][0] / results['basic'][1]:.3f} (target <= 1.10)")
    print(f"parallel/basic wall ratio={parallel:.3f} (target <= 0.65 on 2 cores)")


if __name__ == "__main__":
    main()
