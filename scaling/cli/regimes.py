"""`scaling regimes INPUT [--json OUT]`: label each run overfitting / underfitting / balanced, with why."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_input_options, load_input, write_json

# Thresholds fields -> (flag, help); defaults come from scaling.study.regimes.Thresholds.
_THRESHOLD_FLAGS = {
    "band": ("--band", "law view: balanced when D is within this factor of D_opt(C) (default sqrt(10))"),
    "kaplan_penalty": ("--kaplan-penalty", "kaplan_nd fits: overfitting when L(N,D)/L(N,inf) - 1 exceeds "
                       "this (default 0.02)"),
    "max_repeats": ("--max-repeats", "overfitting beyond this many repeats D/U - 1 (default R_D*: the "
                    "fit's, else Muennighoff's 15.4)"),
    "rise": ("--rise", "curves: held-out loss this fraction above its minimum = rising (default 0.01)"),
    "gap": ("--gap", "curves: growth of the train/held-out gap, nats/token, that counts (default 0.1)"),
    "noise_z": ("--noise-z", "curves: a rise or gap growth must also exceed this many standard deviations "
                "of the evaluation noise (default 3)"),
    "tail": ("--tail", "curves: final fraction of tokens checked for a steep fall (default 0.2)"),
    "steep": ("--steep", "curves: undertrained when held-out loss fell more than this fraction over the "
              "tail (default 0.02)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "regimes",
        help="label runs overfitting / underfitting / balanced from the fitted law and their curves",
        description="Label each run from the fitted law over the (N, D) plane and, for a sweep folder, "
        "from its learning curves (metrics.jsonl), with the reason and where overfitting began.",
    )
    add_input_options(p)
    p.add_argument("--fit", metavar="FIT_JSON", help="use this fit (from `scaling fit --json`) instead of "
                   "fitting --law to INPUT")
    p.add_argument("--law", default="chinchilla", help="law fitted when no --fit is given (default "
                   "%(default)s; kaplan_nd adds Kaplan's criterion, data_constrained needs U)")
    for field, (flag, text) in _THRESHOLD_FLAGS.items():
        p.add_argument(flag, dest=field, type=float, default=None, help=text)
    p.add_argument("--json", metavar="OUT", help="write {\"runs\": [...]} as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.fitting.result import load_fit
    from scaling.study.regimes import Thresholds, classify, fit_if_possible

    chosen = {field: getattr(args, field) for field in _THRESHOLD_FLAGS if getattr(args, field) is not None}
    thresholds = Thresholds(**chosen)
    table = load_input(args)
    fit_result = load_fit(args.fit) if args.fit else None
    if fit_result is None:
        fit_result = fit_if_possible(table, args.law)
    # law None: with too few runs to fit, fit_if_possible warned once above
    regimes = classify(table, fit_result, thresholds=thresholds, law=None)
    print(regimes.describe())
    write_json(args.json, regimes.to_json())
    return 0
