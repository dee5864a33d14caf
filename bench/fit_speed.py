"""Benchmark: our Chinchilla fit and bootstrap against Hoffmann et al.'s classic procedure, in one process.

Data: Chinchilla's runs as extracted by Epoch AI (data/chinchilla_epoch_fig4.csv), 5 highest losses dropped.

Baseline (classic): scipy L-BFGS-B with finite-difference gradients from each of Chinchilla's 4500 starting
points (alpha, beta in {0, 0.5, ..., 2}, e in {-1, ..., 1}, a, b in {0, 5, ..., 25}). A random sample of
starts is timed and scaled to 4500; its bootstrap is one such fit per resample, started (as Epoch did)
from Hoffmann et al.'s published estimates. Both sides run with BLAS on one thread (the baseline's best).

Prints `ratio=` lines (targets: full fit >= 300x, 4000 bootstrap refits >= 30x) and both objectives.
Run: .venv/bin/python bench/fit_speed.py [--starts 150] [--resamples 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scaling.fitting.bootstrap import bootstrap_thetas
from scaling.fitting.laws import Inputs, get_law
from scaling.fitting.objective import Problem
from scaling.fitting.procedure import fit
from scaling.fitting.solvers import classic_single, classic_starts
from scaling.reference import HOFFMANN_2022
from scaling.runs.table import load_runs

DATA = Path(__file__).resolve().parents[1] / "data" / "chinchilla_epoch_fig4.csv"
GRID_SIZE, BOOTSTRAP = 4500, 4000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=150, help="classic starts to time (>= 100)")
    parser.add_argument("--resamples", type=int, default=100, help="classic bootstrap fits to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table = load_runs(DATA, {"N": "Model Size", "C": "Training FLOP"}, drop_top_loss=5)
    law = get_law("chinchilla")
    X = Inputs.make(N=table["N"].to_numpy(), D=table["D"].to_numpy())
    y = np.log(table["loss"].to_numpy())
    problem = Problem(law, X, y)
    rng = np.random.default_rng(args.seed)
    print(f"data: {len(table)} Chinchilla runs (Epoch's extraction, 5 highest losses dropped)")

    with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"):
        # -- classic full fit: time a random sample of the 4500 starts, scale to all of them
        sample = classic_starts()[rng.choice(GRID_SIZE, args.starts, replace=False)]
        t0 = time.perf_counter()
        classic_best = min(classic_single(problem, start)[1] for start in sample)
        per_start = (time.perf_counter() - t0) / args.starts
        classic_full = per_start * GRID_SIZE

        # -- ours: the whole fit, best of 3 timings
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            ours = fit(table)
            timings.append(time.perf_counter() - t0)
        ours_full = min(timings)

        # -- bootstrap: classic = one L-BFGS-B (finite differences) fit per resample from Hoffmann's values
        n = len(table)
        start = law.to_theta(HOFFMANN_2022)
        t0 = time.perf_counter()
        for _ in range(args.resamples):
            rows = rng.integers(0, n, n)
            resampled = Problem(law, Inputs.make(N=X.N[rows], D=X.D[rows]), y[rows])
            classic_single(resampled, start)
        classic_boot = (time.perf_counter() - t0) / args.resamples * BOOTSTRAP

        t0 = time.perf_counter()
        _, converged = bootstrap_thetas(problem, law.to_theta(ours.params), BOOTSTRAP, args.seed)
        ours_boot = time.perf_counter() - t0

    print(
        f"classic fit: {args.starts} of {GRID_SIZE} starts timed, {per_start * 1e3:.1f} ms per start "
        f"-> {classic_full:.0f} s for {GRID_SIZE}; best objective among them {classic_best:.9g}"
    )
    print(f"our fit: {ours_full:.3f} s, objective {ours.objective:.9g}, converged {ours.converged}")
    print(f"objective: ours {ours.objective:.9g}, classic {classic_best:.9g} (published classic 0.00101827)")
    print(f"objective_ours_no_worse={ours.objective <= classic_best + 1e-12}")
    print(f"ratio={classic_full / ours_full:.0f}  (fit: classic {GRID_SIZE} starts / ours; target >=300)")
    print(
        f"bootstrap: classic {classic_boot:.0f} s for {BOOTSTRAP} single-start fits "
        f"({args.resamples} timed); ours {ours_boot:.2f} s for {BOOTSTRAP} refits, "
        f"{int(converged.sum())} converged"
    )
    print(f"ratio={classic_boot / ours_boot:.0f}  (bootstrap {BOOTSTRAP}: classic / ours; target >=30)")


if __name__ == "__main__":
    main()
