"""`make demo` (`python -m scaling.cli.demo`): train the demo sweep on this machine, then write its report.

1. `scaling-train -m +sweep=demo hydra/launcher=local` trains the IsoFLOP sweep of tiny GPTs of
   `sweeps/sweep/demo.yaml` on the known-entropy synthetic source, runs in parallel over the cores, into
   `runs/demo/`. Run folders are named by their config, so a second demo finds its finished runs and
   skips them.
2. `scaling report runs/demo --out reports/demo` fits, allocates by the three approaches, labels regimes,
   backtests, extrapolates to a 175B-parameter model on this data, and writes `reports/demo/` (report.md,
   figures as PNG and PDF).
3. `analysis/chinchilla_replication.py` writes the same report for Chinchilla's published runs
   (`reports/chinchilla/`), where the GPT-3 175B prediction is about language models at that scale.

The last lines printed say where both reports are. Training runs in a subprocess: this module imports no
torch. Paths are relative to the current folder (the repository root under `make demo`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from scaling.cli import main as scaling_cli

RUNS = Path("runs/demo")
REPORT = Path("reports/demo")
CHINCHILLA_REPORT = Path("reports/chinchilla")
CHINCHILLA_SCRIPT = Path(__file__).resolve().parents[1] / "analysis" / "chinchilla_replication.py"


def train_command(runs: Path, extra: list[str]) -> list[str]:
    """The sweep's command line: the venv's `scaling-train` beside this Python, or the module if absent."""
    script = Path(sys.executable).with_name("scaling-train")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "scaling.training.app"]
    return [*head, "-m", "+sweep=demo", "hydra/launcher=local", f"hydra.sweep.dir={runs}", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaling.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RUNS, help="sweep folder (default %(default)s)")
    parser.add_argument("--out", type=Path, default=REPORT, help="report folder (default %(default)s)")
    parser.add_argument("--chinchilla-out", type=Path, default=CHINCHILLA_REPORT,
                        help="folder of the report on Chinchilla's runs (default %(default)s)")
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides for the sweep, e.g. train.evals=8"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    command = train_command(args.runs, args.overrides)
    print("demo: training the sweep:", " ".join(command), flush=True)
    status = subprocess.call(command)
    trained = time.perf_counter() - start
    if status != 0:
        # The sweep ends with a summary of what failed; a report of the completed runs still helps.
        print(
            f"demo: the sweep exited with status {status}; reporting on the runs that completed",
            file=sys.stderr,
            flush=True,
        )
    print(f"demo: sweep done in {trained:.0f} s; fitting and writing the report", flush=True)
    written = scaling_cli(["report", str(args.runs), "--out", str(args.out), "--title", "the demo sweep"])
    if written != 0:
        return written
    reported = time.perf_counter() - start
    print("demo: the same report on Chinchilla's published runs", flush=True)
    # One home for that command: the replication script (a subprocess, as it is not part of the package).
    written = subprocess.call([sys.executable, str(CHINCHILLA_SCRIPT), "--out", str(args.chinchilla_out)])
    if written != 0:
        return written
    total = time.perf_counter() - start
    print(
        f"demo: training {trained:.0f} s, demo report {reported - trained:.0f} s, Chinchilla report "
        f"{total - reported:.0f} s, total {total:.0f} s",
        flush=True,
    )
    print(f"The demo report (175B parameters extrapolated on its data) is in {args.out / 'report.md'}")
    print(f"The Chinchilla report (GPT-3 175B from Chinchilla's runs) is in {args.chinchilla_out}/report.md")
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
