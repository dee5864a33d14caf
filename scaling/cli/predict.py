"""`scaling predict FIT_JSON --params N [--tokens D | --compute C | --optimal]`: loss and budget of a run;
`--schedule SCHEDULE.csv` with a curve fit: the loss curve of a planned run under that LR schedule; with a
downstream fit (`scaling downstream --json`): each task's accuracy and task loss."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_hardware_options, write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="extrapolate a fitted law: loss (95 %% interval), FLOPs, PF-days, GPU-days, memory",
        description="Predict the loss of a run of N parameters trained on D tokens (or C FLOPs, or the "
        "compute-optimal data) from a fit JSON, with the run's budget.",
    )
    p.add_argument("fit_json", metavar="FIT_JSON", help="a fit written by `scaling fit --json` (or "
                   "`scaling downstream --json`: each task's accuracy at --params and --tokens)")
    p.add_argument("--params", dest="N", metavar="N",
                   help="parameters: 175e9, 175B, or a preset name (gpt3_175b)")
    p.add_argument("--tokens", dest="D", metavar="D", help="training tokens: 300B, 3e11")
    p.add_argument("--compute", dest="C", metavar="C", help="training FLOPs (6 N D): D = C / 6N, or with "
                   "--optimal and no --params the compute-optimal N and D")
    p.add_argument("--optimal", action="store_true",
                   help="compute-optimal data for N (or allocation for C), from the fit's Approach 3")
    p.add_argument("--params-total", metavar="N_TOTAL", help="the target's parameters with embeddings, for a "
                   "fit on N_total (default: counted from its shape, GPT-3-like for a bare number)")
    p.add_argument("--unique-tokens", dest="U", metavar="U", help="unique tokens, for a data_constrained fit")
    add_hardware_options(p, "GPU-days")
    p.add_argument("--data", metavar="INPUT", help="the run table or sweep folder the law was fitted on, to "
                   "report the extrapolation (default: the range the fit JSON records)")
    p.add_argument("--map", dest="column_map", metavar="NEW=OLD,...",
                   help='rename the columns of --data, e.g. "N=Model Size,C=Training FLOP"')
    p.add_argument("--schedule", metavar="SCHEDULE_CSV",
                   help="with a curve fit (`scaling fit --curves`): the planned run's LR schedule, rows "
                   "`step, tokens, lr`; predicts the loss at every row and at the end")
    p.add_argument("--allow-unconverged", action="store_true",
                   help="predict from a fit marked NOT CONVERGED (refused otherwise), with a warning")
    p.add_argument("--json", metavar="OUT", help="write the prediction as JSON")
    p.set_defaults(handler=run)


def run_schedule(args: argparse.Namespace) -> int:
    from scaling.errors import UsageError
    from scaling.fitting.curves import load_curve_fit
    from scaling.study.schedule import predict_schedule

    if args.N is None:
        raise UsageError("--schedule needs --params N (the planned run's parameters)")
    if args.D or args.C or args.optimal:
        raise UsageError("--schedule gives the run's length; drop --tokens, --compute and --optimal")
    result = predict_schedule(load_curve_fit(args.fit_json), N=args.N, schedule=args.schedule)
    print(result.describe())
    write_json(args.json, result.to_json())
    return 0


def run_downstream(args: argparse.Namespace) -> int:
    from scaling.errors import UsageError
    from scaling.study.downstream import load_downstream
    from scaling.study.prediction import resolve_params
    from scaling.units import parse_quantity

    if args.N is None or (args.D is None) == (args.C is None) or args.optimal:
        raise UsageError("a downstream fit predicts the accuracy of one run: give --params N and --tokens D "
                         "(or --compute C)")
    N = resolve_params(args.N)[0]
    D = parse_quantity(args.D, "D (tokens)") if args.D else parse_quantity(args.C, "C (FLOPs)") / (6 * N)
    result = load_downstream(args.fit_json).predict(N, D)
    print(result.describe())
    write_json(args.json, result.to_json())
    return 0


def run(args: argparse.Namespace) -> int:
    from scaling.errors import UsageError
    from scaling.fitting.curves import is_curve_fit
    from scaling.study.downstream import is_downstream_fit

    if args.schedule:
        return run_schedule(args)
    if is_downstream_fit(args.fit_json):
        return run_downstream(args)
    if is_curve_fit(args.fit_json):
        raise UsageError(f"{args.fit_json} is a learning-curve fit: give the run's --schedule SCHEDULE_CSV")
    from scaling.fitting.result import load_fit
    from scaling.study.prediction import fitted_range, predict

    fit_result = load_fit(args.fit_json)
    data_range = None  # the fit's own range (`scaling fit` records it) unless --data says otherwise
    if args.data:
        from scaling.runs.table import load_runs, parse_column_map

        data_range = fitted_range(load_runs(args.data, parse_column_map(args.column_map)))
    result = predict(
        fit_result, N=args.N, D=args.D, C=args.C, optimal=args.optimal,
        U=args.U, params_total=args.params_total, accelerator=args.accelerator, mfu=args.mfu,
        data_range=data_range, allow_unconverged=args.allow_unconverged,
    )
    print(result.describe())
    write_json(args.json, result.to_json())
    return 0
