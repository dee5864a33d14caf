"""`scaling plan --budget C --target-params N (--target-tokens D | --optimal) --out DIR/sweep/NAME.yaml`:
the runs of a sweep budget that most sharpen the prediction at a target."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_hardware_options, write_json, wrote
from scaling.defaults import PLAN_DEFAULTS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="design the next sweep: the runs that most sharpen the prediction at a target, for a budget",
        description="Choose runs (N params, D tokens, GPT shapes) and how many of each so that a fit of "
        "their losses predicts the loss at the target as precisely as possible, with the total compute "
        "sum 6ND within the budget; averaged over the prior's uncertainty. Writes the sweep file, "
        "runnable as `scaling-train --config-dir DIR -m +sweep=NAME`.",
    )
    p.add_argument("--budget", metavar="C", required=True, help="sweep compute, sum 6ND FLOPs: 1e21")
    p.add_argument(
        "--target-params", metavar="N", required=True, help="the model to predict: 175B, 7e9, gpt3_175b"
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-tokens", metavar="D", help="its training tokens: 3.7T")
    target.add_argument(
        "--optimal", action="store_true", help="its compute-optimal tokens D_opt(N) under the prior"
    )
    p.add_argument(
        "--prior",
        metavar="FIT_JSON",
        help="a fit (`scaling fit --bootstrap K --json`); default: Epoch AI's Chinchilla refit",
    )
    p.add_argument(
        "--runs-so-far",
        metavar="INPUT",
        help="runs already trained (CSV or sweep folder): the plan adds to what they tell",
    )
    p.add_argument(
        "--map", dest="column_map", metavar="NEW=OLD,...", help="rename the columns of --runs-so-far"
    )
    p.add_argument(
        "--min-params",
        metavar="N",
        default=PLAN_DEFAULTS["min_params"],
        help="smallest run (default %(default)g)",
    )
    p.add_argument(
        "--max-params",
        metavar="N",
        default=PLAN_DEFAULTS["max_params"],
        help="largest run (default %(default)g)",
    )
    p.add_argument(
        "--max-runs",
        metavar="K",
        type=int,
        default=PLAN_DEFAULTS["max_runs"],
        help="most runs (default %(default)s)",
    )
    p.add_argument(
        "--max-repeats",
        metavar="K",
        type=int,
        default=PLAN_DEFAULTS["max_repeats"],
        help="most runs of one (N, D), with other seeds (default %(default)s)",
    )
    p.add_argument(
        "--n-ctx",
        metavar="T",
        type=int,
        default=PLAN_DEFAULTS["n_ctx"],
        help="context length of the runs' models, tokens (default %(default)s)",
    )
    add_hardware_options(p, "GPU-hours")
    p.add_argument(
        "--noise",
        metavar="SIGMA",
        type=float,
        default=PLAN_DEFAULTS["noise"],
        help="run-to-run relative spread of a final loss, for the interval widths (default %(default)s)",
    )
    p.add_argument("--seed", metavar="S", type=int, default=0, help="seed of the prior's sampling")
    p.add_argument("--out", metavar="DIR/sweep/NAME.yaml", required=True, help="the sweep file to write")
    p.add_argument("--allow-unconverged", action="store_true",
                   help="plan from a --prior fit marked NOT CONVERGED (refused otherwise), with a warning")
    p.add_argument("--json", metavar="OUT", help="write the plan as JSON")
    p.add_argument("--hparams", metavar="FILE_JSON", help="runs take the LR and batch of these laws "
                   "(`scaling hparams --json`): the sweep sets train.lr=law and train.hparams")
    p.add_argument("--figure", metavar="PNG", help="draw the plan in the (N, D) plane (PNG and PDF)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.errors import UsageError
    from scaling.io import atomic_write_text, check_writable, sweep_name_of
    from scaling.study.planning import plan

    name = sweep_name_of(args.out)
    check_writable(args.out, "--out")
    if args.json:
        check_writable(args.json, "--json")
    if args.figure:
        if not args.figure.endswith(".png"):
            raise UsageError(f"--figure {args.figure!r} must name a .png file (a .pdf is written beside it)")
        check_writable(args.figure, "--figure")
    prior = None
    if args.prior:
        from scaling.fitting.result import load_fit

        prior = load_fit(args.prior)
    runs_so_far = None
    if args.runs_so_far:
        from scaling.runs.table import load_runs, parse_column_map

        runs_so_far = load_runs(args.runs_so_far, parse_column_map(args.column_map))
    result = plan(
        args.budget,
        args.target_params,
        args.target_tokens,
        optimal=args.optimal,
        prior=prior,
        runs_so_far=runs_so_far,
        min_params=args.min_params,
        max_params=args.max_params,
        max_runs=args.max_runs,
        max_repeats=args.max_repeats,
        n_ctx=args.n_ctx,
        accelerator=args.accelerator,
        mfu=args.mfu,
        noise=args.noise,
        seed=args.seed,
        allow_unconverged=args.allow_unconverged,
        hparams=args.hparams,
    )
    figure = None
    if args.figure:  # drawn before anything is written: a failure leaves no partial output
        from scaling.report.study_figures import plot_plan

        figure = plot_plan(result)
    print(result.describe())
    atomic_write_text(args.out, result.sweep_yaml(name))
    wrote(args.out)
    write_json(args.json, result.to_json())
    if figure is not None:
        from scaling.report.style import save_figure

        save_figure(figure, args.figure.removesuffix(".png"))
        wrote(args.figure, " and its PDF")
    return 0
