"""What the training benches share: a list of override values, and one `scaling-train -m` sweep trained
into a folder on the basic launcher, several sweeps at once in threads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


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
