"""`scaling hparams INPUT [--json OUT] [--figure PNG]`: lr_opt(N, D), B_opt(N, D) from an LR x batch grid."""

from __future__ import annotations

import argparse

from scaling.cli.common import add_input_options, load_input, write_json, wrote


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "hparams",
        help="fit the optimal learning rate and batch size as power laws of N and D",
        description="Find each (N, D) setting's optimal peak learning rate and batch (tokens) from a "
        "quadratic surface over its near-optimal runs, then fit lr_opt = c N^a D^b and B_opt = c' N^g D^h "
        "with "
        "bootstrap intervals over settings. INPUT needs N, D, loss, lr and batch_tokens (or batch_size "
        "and n_ctx).",
    )
    add_input_options(p)
    p.add_argument("--band", type=float, default=None, help="near-optimal set: runs within this fraction of "
                   "a setting's best loss (default 0.01)")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="resamples of the settings (default %(default)s)")
    p.add_argument("--json", metavar="OUT", help="write the laws and per-setting optima as JSON")
    p.add_argument("--figure", metavar="PNG", help="write the loss landscapes with the fitted optima")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.errors import UsageError
    from scaling.study.hparams import BAND, fit_hparams, hparam_table

    band = BAND if args.band is None else args.band
    if not 0 <= band < 1:
        raise UsageError(f"--band must be in [0, 1), got {band}")
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    table = load_input(args)
    laws = fit_hparams(table, band=band, bootstrap=args.bootstrap)
    print(laws.describe())
    write_json(args.json, laws.to_json())
    if args.figure:
        from scaling.report.hparams_figure import landscape_figure, save_landscape

        save_landscape(landscape_figure(hparam_table(table), laws), args.figure)
        wrote(args.figure)
    return 0
