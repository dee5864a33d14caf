"""`make demo` (`python -m scaling.cli.demo`): train the demo sweep on this machine, then write its report.

1. `scaling-train -m +sweep=demo hydra/launcher=local` trains the IsoFLOP sweep of tiny GPTs of
   `sweeps/sweep/demo.yaml` on the known-entropy synthetic source, runs in parallel over the cores, into
   `runs/demo/`. Run folders are named by their config, so a second demo finds its finished runs and
   skips them.
2. `scaling report runs/demo --out reports/demo` fits, allocates by the three approaches, labels regimes,
   backtests, extrapolates to a 175B-parameter model on this data, and writes `reports/demo/` (report.md,
   figures as PNG and PDF).
3. `chinchilla_report` writes the same report for Chinchilla's published runs, the data file that ships
   with scaling (`reports/chinchilla/`), where the GPT-3 175B prediction is about language models at that
   scale. Everything the demo runs is in the package, so it works from a wheel install as from a clone.

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
from scaling.resources import data_file

RUNS = Path("runs/demo")
REPORT = Path("reports/demo")
CHINCHILLA_REPORT = Path("reports/chinchilla")
# Hoffmann et al.'s Figure 4 runs as Epoch AI extracted them, with the 5 highest losses dropped as Epoch did
CHINCHILLA_DATA = "chinchilla_epoch_fig4.csv"
CHINCHILLA_COLUMNS = "N=Model Size,C=Training FLOP"
CHINCHILLA_DROP_TOP_LOSS = 5
CHINCHILLA_TITLE = "Chinchilla (Hoffmann et al. 2022, runs extracted by Epoch AI)"


def chinchilla_report(out: str | Path, *, bootstrap: int = 1000, isoflop_tolerance: float = 0.01) -> int:
    """`scaling report` on Chinchilla's published runs (`Model Size` = N params, `Training FLOP` = C FLOPs,
    loss nats/token) into `out`; `bootstrap` resamples for the 95 % intervals, `isoflop_tolerance` the
    relative compute within which runs form one IsoFLOP profile. Returns the command's exit status."""
    return scaling_cli([
        "report", str(data_file(CHINCHILLA_DATA)), "--map", CHINCHILLA_COLUMNS,
        "--drop-top-loss", str(CHINCHILLA_DROP_TOP_LOSS), "--out", str(out), "--bootstrap", str(bootstrap),
        "--isoflop-tolerance", str(isoflop_tolerance), "--title", CHINCHILLA_TITLE,
    ])  # fmt: skip


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
    written = chinchilla_report(args.chinchilla_out)
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
