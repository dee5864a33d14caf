"""The full report (`scaling report`) for Chinchilla's runs: reports/chinchilla/report.md and its figures.

The data are Hoffmann et al.'s Figure 4 runs as Epoch AI extracted them (data/chinchilla_epoch_fig4.csv:
`Model Size` = N params, `Training FLOP` = C FLOPs, loss nats/token; D = C / 6N tokens), with the 5
highest losses dropped as Epoch did. The same as

    scaling report data/chinchilla_epoch_fig4.csv --map "N=Model Size,C=Training FLOP" \\
        --drop-top-loss 5 --out reports/chinchilla

The report itself is `scaling.cli.demo.chinchilla_report` (`make demo` writes it too). The numeric
replication of Epoch's fit (objective, parameters, intervals, likelihood-ratio tests) with its
checks is analysis/chinchilla_fit.py; this script draws and writes everything around it: the IsoFLOP
profiles, the three approaches, the regimes over the (N, D) plane, the backtest and GPT-3 175B.
The extracted compute values scatter by a few percent around Chinchilla's budgets, so runs of one IsoFLOP
profile are grouped within `--isoflop-tolerance` (default 1 %, as `scaling allocate`).

Run: .venv/bin/python analysis/chinchilla_replication.py [--out reports/chinchilla] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scaling.cli.demo import chinchilla_report

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "chinchilla", help="report folder")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95 %% intervals")
    parser.add_argument(
        "--isoflop-tolerance", type=float, default=0.01, help="IsoFLOP grouping, relative compute"
    )
    args = parser.parse_args(argv)
    return chinchilla_report(args.out, bootstrap=args.bootstrap, isoflop_tolerance=args.isoflop_tolerance)


if __name__ == "__main__":
    sys.exit(main())
