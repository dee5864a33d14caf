"""`scaling regimes INPUT [--json OUT]`: label each run overfitting / underfitting / balanced, with why."""

from __future__ import annotations

import argparse
import math

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
    from scaling.study.regimes import Thresholds, classify, fit_if_possible, to_json

    chosen = {field: getattr(args, field) for field in _THRESHOLD_FLAGS if getattr(args, field) is not None}
    thresholds = Thresholds(**chosen)
    table = load_input(args)
    fit_result = load_fit(args.fit) if args.fit else None
    if fit_result is None:
        fit_result = fit_if_possible(table, args.law)
    labels = classify(table, fit_result, thresholds, law=None)  # None: too few runs, warned once above
    print(describe(labels, fit_result))
    write_json(args.json, to_json(labels, fit_result, thresholds))
    return 0


def describe(labels, fit_result) -> str:
    """One block per run: the combined label, then each view's reason."""
    if fit_result is None:
        head = "law view: none (too few runs to fit); curve view only"
    else:
        params = ", ".join(f"{k} {v:.4g}" for k, v in fit_result.params.items())
        head = f"law view: {fit_result.law} fit ({params})"
    lines = [head]
    for i, row in enumerate(labels.to_dict(orient="records"), start=1):
        name = row.get("run", f"row {i}")
        lines.append(
            f"{name}: {row['regime'].upper()}  N {row['N']:.3g} params, D {row['D']:.3g} tokens "
            f"({row['D'] / row['N']:.3g} tokens/param)"
        )
        for view in ("law", "curve"):
            reason = row.get(f"{view}_reason")
            if isinstance(reason, str):
                lines.append(f"    {view:5s} {row[f'{view}_regime']}: {reason}")
        onset = row.get("onset_step")
        if onset is not None and not (isinstance(onset, float) and math.isnan(onset)):
            lines.append(f"    overfitting began at step {int(onset)} ({row['onset_tokens']:.3g} tokens)")
    counts = labels["regime"].value_counts()
    lines.append("total: " + ", ".join(f"{n} {label}" for label, n in counts.items()))
    return "\n".join(lines)
