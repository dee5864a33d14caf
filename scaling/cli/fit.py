"""`scaling fit INPUT [--law LAW] [--bootstrap K] [--seed S] [--json OUT]`: fit a scaling law; with `--curves`
a learning-curve law (`scaling.fitting.curves`) to every point of every curve of a curve table."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from scaling.cli.common import (
    add_input_options,
    add_params_column_option,
    load_input,
    source_options,
    write_json,
)
from scaling.defaults import HUBER_DELTA, METHODS
from scaling.errors import UsageError
from scaling.fitting.laws import LAW_NAMES

# mpl, mpl_n, annealing_area: --curves only; the names of scaling.fitting.curves.CURVE_LAWS (a module --help
# does not load)
CURVE_LAW_NAMES = ("mpl", "mpl_n", "annealing_area")
POINT_LAW_CHOICES = (*LAW_NAMES, "auto")  # the laws of final points (fit and report)
LAW_CHOICES = (*POINT_LAW_CHOICES, *CURVE_LAW_NAMES)
DEFAULT_LAW = "chinchilla"
# The rule of scaling.fitting.select, as --help says it (fit and report)
AUTO_HELP = (
    "auto: chinchilla on all runs unless another law or fit subset clearly beats it in a rolling backtest "
    "(lower fold errors by more than one standard error), then the best of those"
)


def parse_params(text: str) -> dict[str, float]:
    """'E=1.69,A=406.4,...' -> {'E': 1.69, 'A': 406.4, ...}."""
    params = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name.strip() or not math.isfinite(number):
            raise UsageError(f"--test-params entry {item!r} is not NAME=NUMBER (e.g. E=1.69,A=406.4,...)")
        params[name.strip()] = number
    return params


def base_law_params(path: str) -> dict[str, float]:
    """The parameters of a chinchilla_tied fit JSON, the base law of a two-stage data_constrained fit."""
    from scaling.fitting.result import load_fit

    base = load_fit(path)
    if base.law != "chinchilla_tied":
        raise UsageError(f"--base {path} is a {base.law} fit; give a chinchilla_tied fit (alpha = beta)")
    return base.params


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a scaling law (Chinchilla, Kaplan, data-constrained) with bootstrap intervals",
        description="Fit a law to the runs by minimising Chinchilla's objective (Huber, delta 1e-3, of "
        "log(loss) - log(prediction), summed over runs) to its global optimum.",
    )
    add_input_options(p)
    add_params_column_option(p)
    p.add_argument(
        "--law",
        choices=LAW_CHOICES,
        help=f"law to fit (default {DEFAULT_LAW}); {AUTO_HELP} (needs enough runs for 2 compute cut-offs); "
        "with --curves: mpl (the Multi-Power Law, one model size; default for one), mpl_n (several sizes "
        "jointly; default for several) or annealing_area (Tissue et al. 2024, one size)",
    )
    p.add_argument(
        "--curves",
        action="store_true",
        help="INPUT is a curve table (run, N, step, tokens, lr, loss per logged step): fit a "
        "learning-curve law of N and the LR schedule on every point of every curve",
    )
    p.add_argument(
        "--backtest-axis",
        default="C",
        choices=("C", "N"),
        help="with --law auto: cut the rolling backtest at compute C (default) or model size N",
    )
    p.add_argument(
        "--bootstrap",
        metavar="K",
        type=int,
        default=0,
        help="resample the runs K times for 95 %% intervals (e.g. 4000)",
    )
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the resampling")
    p.add_argument(
        "--loss",
        default="huber",
        choices=("huber", "squared"),
        help="objective on log residuals (default %(default)s)",
    )
    p.add_argument("--delta", type=float, default=HUBER_DELTA, help="Huber delta (default %(default)g)")
    p.add_argument(
        "--method",
        default="profile",
        choices=METHODS,
        help="profile: our global search (default); classic: Hoffmann et al.'s 4500-start "
        "L-BFGS-B grid with finite differences (chinchilla only; about 10 minutes)",
    )
    p.add_argument(
        "--procedure",
        choices=("two-stage", "joint"),
        help="data_constrained: two-stage (default; Muennighoff et al.'s: base law with alpha = beta on "
        "the runs of at most 2.5 epochs, then R_D*, R_N* with the base fixed) or joint (all 7 at once)",
    )
    p.add_argument(
        "--base",
        metavar="FIT_JSON",
        help="data_constrained, two-stage: the base law from this chinchilla_tied fit (`scaling fit --law "
        "chinchilla_tied --json`) of single-epoch runs, instead of a fit to the runs of <= 2.5 epochs",
    )
    p.add_argument(
        "--test-params",
        dest="params",  # likelihood_ratio_test's argument
        metavar="NAME=VALUE,...",
        help="likelihood-ratio test of a published parameter set against the fit, e.g. "
        "E=1.69,A=406.4,B=410.7,alpha=0.34,beta=0.28",
    )
    p.add_argument(
        "--holdout-top",
        metavar="F",
        type=float,
        help="backtest: also fit on all but the top fraction F of runs by compute and report "
        "the prediction error on those",
    )
    p.add_argument("--json", metavar="OUT", help="write the fit as JSON (atomically)")
    p.set_defaults(handler=run)


def run_curves(args: argparse.Namespace) -> int:
    from scaling.fitting.curves import backtest_curves, fit_curves, top_compute_runs
    from scaling.runs.curves import load_curves

    if args.law is not None and args.law not in CURVE_LAW_NAMES:
        raise UsageError(f"--law {args.law} fits final points; with --curves give "
                         f"{' or '.join(CURVE_LAW_NAMES)}")
    source = args.input
    if not Path(source).is_file():  # a sweep folder or a tracker: its curve table, as `scaling runs --curves`
        from scaling.runs.curve_sources import collect_curves

        source = collect_curves(source, **source_options(args))
    curves = load_curves(source)
    result = fit_curves(curves, law=args.law, bootstrap=args.bootstrap, seed=args.seed, delta=args.delta)
    print(result.describe())
    document = result.to_json()
    if args.holdout_top is not None:
        check = backtest_curves(curves, top_compute_runs(curves, args.holdout_top), law=result.law,
                                delta=args.delta)
        print(check.describe())
        document["backtest"] = check.to_json()
    write_json(args.json, document)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.curves:
        return run_curves(args)
    if args.law in CURVE_LAW_NAMES:
        raise UsageError(f"--law {args.law} is a learning-curve law: give --curves and a curve table")
    args.law = args.law or DEFAULT_LAW
    from scaling.fitting.backtest import backtest
    from scaling.fitting.data import use_params_column
    from scaling.fitting.likelihood import likelihood_ratio_test
    from scaling.fitting.procedure import AUTO, fit
    from scaling.fitting.select import fit_auto

    test_params = parse_params(args.params) if args.params else None
    table = load_input(args)
    procedure = None if args.procedure is None else args.procedure.replace("-", "_")  # the library's name
    base = None if args.base is None else base_law_params(args.base)
    options = {"loss": args.loss, "delta": args.delta, "procedure": procedure, "base": base}
    final = {"bootstrap": args.bootstrap, "seed": args.seed, "method": args.method, **options}
    if args.law == AUTO:
        result = fit_auto(table, axis=args.backtest_axis, params_column=args.params_column, **final)
        print(result.selection.describe())
    else:
        result = fit(table, law=args.law, params_column=args.params_column, **final)
    print(result.describe())
    table = use_params_column(table, args.params_column)  # the backtest and test below read the same N
    document = result.to_json()
    if test_params is not None:
        test = likelihood_ratio_test(table, test_params, law=result.law, fit_result=result)
        print(test.describe())
        document["likelihood_ratio_test"] = test.to_json()
    if args.holdout_top is not None:
        check = backtest(table, law=result.law, holdout_top=args.holdout_top, **options)
        print(check.describe())
        document["backtest"] = check.to_json()
    write_json(args.json, document)
    return 0
