"""What the training benches share: their --out and --jobs options, a list of override values, and one
`scaling-train -m` sweep trained into a folder on the basic launcher, several sweeps at once in threads."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """--out (where the runs are kept) and --jobs (sweeps trained at once)."""
    parser.add_argument(
        "--out", type=Path,
        help="keep the runs in this folder (default: a temporary one); finished runs there are reused",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=int, default=2, help="sweeps trained at once (each on 1 thread if > 1)"
    )


def sweep_root(parser: argparse.ArgumentParser, args: argparse.Namespace, prefix: str) -> Path:
    """The folder the sweeps train into (--out, else a new temporary one), checked and created."""
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    root = args.out or Path(tempfile.mkdtemp(prefix=prefix))
    if root.exists() and not root.is_dir():
        parser.error(f"--out {root}: not a folder")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def csv_values(values: Iterable[float]) -> str:
    """Values as one Hydra sweep override list: 1e+06,2e+06."""
    return ",".join(f"{v:g}" for v in values)


def train_sweep(folder: Path, overrides: Sequence[str], threads: int = 0) -> None:
    """Train one `scaling-train -m` sweep into `folder` (the basic launcher: one run after another);
    `threads` > 0 caps each run's torch threads (sweeps side by side)."""
    train = Path(sys.executable).with_name("scaling-train")
    command = [str(train), "-m", "hydra/launcher=basic", f"hydra.sweep.dir={folder}", *overrides]
    if threads:
        command.append(f"train.threads={threads}")
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder.parent)
    if done.returncode != 0:
        raise SystemExit(f"error: {folder.name} sweep failed ({done.returncode}):\n{done.stderr[-2000:]}")


def train_sweeps(root: Path, sweeps: Mapping[str, Sequence[str]], common: Sequence[str], jobs: int) -> None:
    """Each sweep `name: overrides` (after the `common` ones) into root/name, `jobs` at a time (one torch
    thread each when > 1)."""
    threads = 1 if jobs > 1 else 0
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda item: train_sweep(root / item[0], [*common, *item[1]], threads), sweeps.items()))
