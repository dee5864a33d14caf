"""Benchmark: `scaling report` against `scaling fit --bootstrap 1000` on the same runs, as a user runs them.

Data: Chinchilla's runs as extracted by Epoch AI (data/chinchilla_epoch_fig4.csv, all 245 rows, the
command lines of issue 21). Both commands run as subprocesses of the installed `scaling` (imports
included), best of `--repeat`; the report writes its folder into a temporary directory. The report's own
time is then split in one process: the analysis (`scaling.report.pipeline.analyse`: fit, three
allocations, backtest, rolling backtest, regimes, predictions) against drawing and writing the figures
(PNG and PDF) and files.

Prints the report's time, the fit's time, `ratio=` report/fit (target <= 3) and the split.
Run: .venv/bin/python bench/report_speed.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "chinchilla_epoch_fig4.csv"
COLUMNS = "N=Model Size,C=Training FLOP"
BOOTSTRAP = 1000


def timed(command: list[str], repeat: int) -> float:
    """The best wall time (s) of `repeat` runs of `command`, which must succeed."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the best is kept")
    args = parser.parse_args()
    scaling = [str(Path(sys.executable).with_name("scaling"))]  # the console script of this environment
    with tempfile.TemporaryDirectory() as tmp:
        data = [str(DATA), "--map", COLUMNS]
        fit = timed([*scaling, "fit", *data, "--bootstrap", str(BOOTSTRAP)], args.repeat)
        report = timed([*scaling, "report", *data, "--out", f"{tmp}/report"], args.repeat)
        print(f"data: {DATA.name}, bootstrap {BOOTSTRAP}; best of {args.repeat}")
        print(f"scaling fit --bootstrap {BOOTSTRAP}: {fit:.2f} s")
        print(f"scaling report:                {report:.2f} s")
        print(f"ratio={report / fit:.2f} (report / fit; target <= 3)")

        from scaling.report.document import write_report
        from scaling.report.pipeline import analyse

        options = {"column_map": dict(item.split("=") for item in COLUMNS.split(","))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            analyse(DATA, **options)
            analysed = time.perf_counter() - start
            start = time.perf_counter()
            write_report(DATA, f"{tmp}/again", **options)
            written = time.perf_counter() - start
    drawn = written - analysed
    print(f"in one process: analysis {analysed:.2f} s; figures (PNG and PDF) and files {drawn:.2f} s")


if __name__ == "__main__":
    main()
