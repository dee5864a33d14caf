"""Benchmark: how much better `scaling plan`'s sweep predicts the target than an IsoFLOP sweep of its compute.

Both sweeps are planned from the same prior (Epoch AI's Chinchilla refit, as `scaling plan` uses with no
--prior; or `--prior FIT_JSON`, e.g. a fit without --bootstrap, which the planner widens). The baseline is
the standard design: IsoFLOP profiles at 4 budgets 4x apart, 5 model sizes each, log-spaced within +-0.6
decade of the prior's N_opt(C), with the plan's total compute (`SweepPlan.isoflop_runs`).

For each simulated ("true") law, both sweeps' losses are drawn with 1 % run-to-run noise (log-normal),
fitted with `scaling.fit` (the Chinchilla law, its default objective), and the fitted law's loss at the
target is compared with the true one. The true laws come in three groups, so that the gain is not a bet
on the prior being right:

- near: drawn from the prior itself (its 95 % intervals);
- far: drawn with 3x the prior's spread (exponents off by up to ~0.1, E by ~0.15 nats);
- Hoffmann: Hoffmann et al.'s own fit (E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28), a beta far
  below the prior's interval.

Prints the RMS error of log(predicted / true loss) for each design and group, and `ratio=` (RMS IsoFLOP /
RMS plan over all simulations; target >= 1.5), about 2-3 minutes on 2 cores.
Run: .venv/bin/python bench/plan_gain.py [--prior FIT_JSON] [--truth E=1.9,A=300,B=900,alpha=0.3,beta=0.33]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from scaling.cli.fit import parse_params
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import load_fit
from scaling.reference import EPOCH_INTERVALS, EPOCH_PRIOR, HOFFMANN_2022, training_flops
from scaling.study.planning import plan
from scaling.units import parse_quantity

NOISE = 0.01  # 1 % run-to-run


def draw_laws(k: int, spread: float, rng: np.random.Generator) -> list[dict[str, float]]:
    """k Chinchilla laws around Epoch's estimate: each parameter (log for E, A, B) normal with `spread`
    times the sd its 95 % interval implies."""
    law = get_law("chinchilla")
    centre = law.to_theta(EPOCH_PRIOR)
    lo = law.to_theta({n: v[0] for n, v in EPOCH_INTERVALS.items()})
    hi = law.to_theta({n: v[1] for n, v in EPOCH_INTERVALS.items()})
    sd = spread * (hi - lo) / (2 * 1.96)
    return [law.from_theta(centre + sd * rng.standard_normal(centre.size)) for _ in range(k)]


def prediction_error(truth, N, D, target, rng) -> float:
    """log(fitted / true loss) at the target, after fitting noisy losses of runs (N, D) under `truth`."""
    law = get_law("chinchilla")
    loss = law.predict(truth, N=N, D=D) * np.exp(NOISE * rng.standard_normal(N.size))
    fitted = fit(pd.DataFrame({"N": N, "D": D, "loss": loss}))
    return float(np.log(fitted.predict(N=target[0], D=target[1])[0] / law.predict(truth, *target)[0]))


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="1e21", help="sweep compute, FLOPs (default %(default)s)")
    parser.add_argument("--target-params", default="175B", help="default %(default)s")
    parser.add_argument("--target-tokens", default="3.7T", help="default %(default)s")
    parser.add_argument("--near", type=int, default=6, help="laws drawn from the prior (default %(default)s)")
    parser.add_argument(
        "--far", type=int, default=4, help="laws drawn with 3x its spread (default %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=4, help="noise draws per law (default %(default)s)")
    parser.add_argument(
        "--truth",
        action="append",
        metavar="E=..,A=..,B=..,alpha=..,beta=..",
        help="simulate this Chinchilla law instead of the built-in groups (repeatable)",
    )
    parser.add_argument("--max-runs", type=int, default=40, help="runs in the plan (default %(default)s)")
    parser.add_argument("--prior", metavar="FIT_JSON", help="plan from this fit (default: Epoch's refit)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # fits of 20 noisy runs warn about their extrapolation; not our concern
    rng = np.random.default_rng(args.seed)
    target = (parse_quantity(args.target_params), parse_quantity(args.target_tokens))

    t0 = time.perf_counter()
    prior = load_fit(args.prior) if args.prior else None
    planned = plan(args.budget, args.target_params, args.target_tokens, prior=prior, max_runs=args.max_runs)
    plan_N = np.array([r.N for r in planned.runs], float)
    plan_D = np.array([r.D for r in planned.runs], float)
    iso_N, iso_D = (np.array(x, float) for x in zip(*planned.isoflop_runs, strict=True))
    distinct = len({(r.N, r.D) for r in planned.runs})
    print(
        f"prior: {planned.prior_source}\nplan: {len(planned.runs)} runs at {distinct} (N, D) points, "
        f"{len({r.N for r in planned.runs})} sizes, {training_flops(plan_N, plan_D).sum():.3g} FLOPs (6ND), "
        f"planned in {time.perf_counter() - t0:.1f} s; IsoFLOP: {iso_N.size} runs, "
        f"{training_flops(iso_N, iso_D).sum():.3g} FLOPs (6ND)"
    )
    print(
        f"expected (first-order) 95 % interval at the target: plan {planned.interval_width:.3g}, "
        f"IsoFLOP {planned.isoflop_interval_width:.3g} nats/token"
    )

    if args.truth:
        groups = {f"given {i + 1}": [parse_params(text)] for i, text in enumerate(args.truth)}
    else:
        groups = {
            "near": draw_laws(args.near, 1.0, rng),
            "far": draw_laws(args.far, 3.0, rng),
            "Hoffmann": [HOFFMANN_2022],
        }
    errors = {"plan": [], "isoflop": []}
    print(f"{'true laws':<10s} {'n':>3s} {'RMS plan':>9s} {'RMS IsoFLOP':>12s} {'ratio':>6s}")
    for name, laws in groups.items():
        group = {"plan": [], "isoflop": []}
        for truth in laws:
            for _ in range(args.repeats):
                group["plan"].append(prediction_error(truth, plan_N, plan_D, target, rng))
                group["isoflop"].append(prediction_error(truth, iso_N, iso_D, target, rng))
        for key in errors:
            errors[key] += group[key]
        ratio = rms(group["isoflop"]) / rms(group["plan"])
        print(
            f"{name:<10s} {len(group['plan']):3d} {rms(group['plan']):9.4f} {rms(group['isoflop']):12.4f} "
            f"{ratio:6.2f}"
        )
    print(
        f"RMS error of log(loss) at the target: plan {rms(errors['plan']):.4f}, IsoFLOP "
        f"{rms(errors['isoflop']):.4f} ({time.perf_counter() - t0:.0f} s)"
    )
    print(f"ratio={rms(errors['isoflop']) / rms(errors['plan']):.2f}")


if __name__ == "__main__":
    main()
