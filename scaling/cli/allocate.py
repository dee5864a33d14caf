"""`scaling allocate INPUT --approach {1,2,3} [--json OUT]`: compute-optimal N and D for a FLOP budget."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_input_options, add_isoflop_options, load_input, write_json
from scaling.fitting.laws import LAW_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "allocate",
        help="compute-optimal allocation N_opt(C), D_opt(C) by Hoffmann et al.'s Approaches 1-3",
        description="Compute-optimal allocation N_opt = G (C/6)^a params, D_opt ~ (C/6)^b tokens, "
        "C in FLOPs: "
        "Approach 1 lowest-loss envelope (curves from the run folders when present), Approach 2 IsoFLOP "
        "profiles (runs of equal C within 1 %%, each fitted near its lowest loss), Approach 3 closed form "
        "from a parametric fit.",
    )
    add_input_options(p)
    p.add_argument("--approach", type=int, required=True, choices=(1, 2, 3), help="1, 2 or 3")
    p.add_argument("--bootstrap", metavar="K", type=int, default=0, help="resamples for 95 %% intervals")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the resampling")
    p.add_argument(
        "--law",
        default="chinchilla",
        choices=LAW_NAMES,
        help="Approach 3: law to fit (default %(default)s)",
    )
    p.add_argument("--fit", metavar="FIT_JSON", help="Approach 3: use this fit (`scaling fit --json`)")
    p.add_argument(
        "--budgets",
        metavar="C,...",
        help="FLOP budgets for tokens per parameter, e.g. 1e21,5.76e23 (default: the largest "
        "run, 1e21, GPT-3 175B, Chinchilla 70B, 1e25)",
    )
    add_isoflop_options(p)
    p.add_argument(
        "--no-curves",
        dest="use_curves",
        action="store_false",
        help="Approach 1: use final points only, not the loss curves in the run folders",
    )
    p.add_argument("--json", metavar="OUT", help="write the allocation as JSON (atomically)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.fitting.result import load_fit
    from scaling.study.allocation import allocate
    from scaling.units import parse_quantity

    budgets = None
    if args.budgets:
        values = [parse_quantity(x, "--budgets entry") for x in args.budgets.split(",")]
        budgets = {f"{C:.3g} FLOPs": C for C in values}
    fit_result = load_fit(args.fit) if args.fit else None
    table = load_input(args)
    result = allocate(
        table,
        approach=args.approach,
        bootstrap=args.bootstrap,
        seed=args.seed,
        law=args.law,
        fit_result=fit_result,
        budgets=budgets,
        use_curves=args.use_curves,
        isoflop_tolerance=args.isoflop_tolerance,
        profile_fit=args.profile_fit,
        window=args.window,
    )
    print(result.describe())
    write_json(args.json, result.to_json())
    return 0
