"""Helpers shared by the test files (test files import these, never each other).

The CLI's contract for bad input (`assert_usage_error`; the in-process runner is conftest's `cli` fixture,
a real process is `run_process`), synthetic tables and run folders with a known law, the check of what a
reader may see while runs are written, and the client side of the one-node SLURM cluster of tests/slurm.sh
(its fixture is in conftest).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from scaling.fitting.laws import get_law
from scaling.io import read_jsonl
from scaling.reference import HOFFMANN_2022
from scaling.resources import data_file

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the test venv's console scripts: scaling, scaling-train
CHINCHILLA_CSV = data_file("chinchilla_epoch_fig4.csv")

# ---------------------------------------------------------------------------------------------------------
# The CLI as a user meets it


class CliResult(NamedTuple):
    """One command's exit status, stdout and stderr (text)."""

    status: int
    out: str
    err: str


def run_process(
    command: list, *, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> CliResult:
    """`command` (a console script and its arguments, str, Path or bytes) as a real process; its output
    decoded as UTF-8, undecodable bytes replaced."""
    command = [c if isinstance(c, bytes) else str(c) for c in command]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def assert_usage_error(result: CliResult, *fragments: str, warnings: bool = False) -> str:
    """The contract for input a user can fix: exit status 2, no traceback, and on stderr exactly one line
    `error: ...` holding every fragment; with `warnings`, `warning:` lines may come before it. Returns
    the error line."""
    lines = result.err.strip().splitlines()
    assert "Traceback" not in result.err, result.err[-3000:]
    assert result.status == 2, (result.status, result.err[-3000:])
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err[-3000:]
    if warnings:
        assert all(line.startswith("warning:") for line in lines[:-1]), result.err[-3000:]
    else:
        assert len(lines) == 1, result.err[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


# ---------------------------------------------------------------------------------------------------------
# Tables and run folders from a known law

PAPER = HOFFMANN_2022  # a = 0.28 / 0.62 = 0.4516
LAW = get_law("chinchilla")
PLANTED = LAW.compute_optimal(PAPER)


def isoflop_table(noise: float = 0.005, seed: int = 0, off_centre: float = 1.0) -> pd.DataFrame:
    """IsoFLOP profiles: 6 budgets, 9 model sizes each around the planted optimum (times `off_centre`),
    C jittered < 1 %."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e18, 1e21, 6):
        for N in PLANTED.G * (C / 6) ** PLANTED.a * off_centre * np.geomspace(0.25, 4, 9):
            C_run = C * (1 + rng.uniform(-0.004, 0.004))
            D = C_run / (6 * N)
            loss = LAW.predict(PAPER, N=N, D=D)[0] * np.exp(rng.normal(0, noise))
            rows.append({"N": N, "D": D, "loss": loss})
    return pd.DataFrame(rows)


TRUE = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}


def law_table(noise: float = 0.005, seed: int = 0) -> pd.DataFrame:
    """4 sizes x 5 budgets spaced by exactly sqrt(10), so that the anti-diagonals share their compute
    (IsoFLOP profiles), with log-normal noise on the loss of the law TRUE."""
    N = 1e7 * 10 ** (np.arange(4) / 2)
    D = 2e8 * 10 ** (np.arange(5) / 2)
    NN, DD = (x.ravel() for x in np.meshgrid(N, D))
    rng = np.random.default_rng(seed)
    loss = get_law("chinchilla").predict(TRUE, N=NN, D=DD) * np.exp(rng.normal(0, noise, NN.size))
    return pd.DataFrame(
        {"N": NN, "D": DD, "C": 6 * NN * DD, "loss": loss, "run": [f"r{i}" for i in range(NN.size)]}
    )


# A downstream task on a ladder: task loss (bits per byte) = TASK_LAW(N, D); accuracy a sigmoid of it from
# chance 0.25 up to TASK_CEILING. Column names as OLMo logs them to W&B (they pair by the naming rule).
TASK_LAW = {"E": 0.6, "A": 60.0, "B": 120.0, "alpha": 0.3, "beta": 0.3}
TASK_SIGMOID = {"floor": 0.25, "ceiling": 0.9, "k": 6.0, "x0": 1.05}
ACC_COLUMN = "eval/downstream/hellaswag_rc_5shot_len_norm"
BPB_COLUMN = "eval/downstream_bpb/hellaswag_rc_5shot_bpb_bpb"


def task_accuracy(task_loss: np.ndarray) -> np.ndarray:
    s = TASK_SIGMOID
    return s["floor"] + (s["ceiling"] - s["floor"]) / (1 + np.exp(s["k"] * (task_loss - s["x0"])))


def task_ladder(noise: float = 0.004, seed: int = 0, checkpoints: int = 1) -> pd.DataFrame:
    """A ladder of 5 sizes x 2 token multiples (20 and 60 tokens per parameter), the middle size trained
    three times (reruns), with its task loss and accuracy (noise on both); with `checkpoints` > 1 each run
    also has that many earlier evaluations (rows of the same run, a `step` column), as a W&B export has.
    The LM loss (nats/token) follows TRUE."""
    rng = np.random.default_rng(seed)
    rows = []
    sizes = [2e7, 5e7, 1.2e8, 3e8, 7e8]
    for i, n in enumerate(sizes):
        for ratio in (20, 60):
            for rerun in range(3 if (i == 2 and ratio == 20) else 1):
                for k in range(1, checkpoints + 1):
                    d = ratio * n * k / checkpoints
                    x = get_law("chinchilla").predict(TASK_LAW, N=[n], D=[d])[0] + rng.normal(0, noise)
                    rows.append({
                        "run": f"{n:.0e}-{ratio}x" + (f"-rerun{rerun}" if rerun else ""), "N": n, "D": d,
                        "step": k * 100,
                        "loss": get_law("chinchilla").predict(TRUE, N=[n], D=[d])[0]
                        * np.exp(rng.normal(0, noise)),
                        ACC_COLUMN: float(np.clip(task_accuracy(x) + rng.normal(0, noise), 0, 1)),
                        BPB_COLUMN: x,
                    })
    table = pd.DataFrame(rows)
    return table if checkpoints > 1 else table.drop(columns="step")


def write_run(folder: Path, status="completed", n=1e6, tokens=2e7, loss=3.1, **extra) -> Path:
    folder.mkdir(parents=True)
    summary = {"status": status, "n_params": n, "n_params_total": n * 1.2, "n_layer": 2, "d_model": 64,
               "n_head": 2, "n_ctx": 128, "tokens": tokens, "unique_tokens": 5e6, "flops": 6 * n * tokens,
               "train_loss": loss - 0.1, "val_loss": loss, "seed": 0, "wall_s": 1.0, **extra}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text("train:\n  lr: 0.001\n  batch_size: 8\ndata:\n  name: default\n")
    (folder / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "tokens": s * 1e6, "flops": 6 * n * s * 1e6, "val_loss": 5 - s}) + "\n"
                for s in range(1, 4)) + '{"step": 4, "tok'  # a torn last line from a killed writer
    )  # fmt: skip
    return folder


def check_snapshot(table) -> dict[str, int]:
    """What a reader may see: complete runs, diverged runs, or runs marked running or interrupted (a
    preempted task's checkpointed stop before its requeue); never a torn one."""
    seen = {"completed": 0, "diverged": 0, "running": 0, "interrupted": 0}
    for row in table.to_dict(orient="records"):
        status = row["status"]
        assert status in seen, (status, row)  # `failed` would mean a torn summary.json was read
        if status == "completed":
            values = [row["N"], row["D"], row["C"], row["loss"]]
            assert all(math.isfinite(v) and v > 0 for v in values), row
            rows = list(read_jsonl(Path(row["run"]) / "metrics.jsonl"))
            assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}) and len(rows) == 4, row
        seen[status] += 1
    return seen


# ---------------------------------------------------------------------------------------------------------
# The SLURM cluster of tests/slurm.sh, as a client sees it

STATE = Path(os.environ.get("SCALING_SLURM_DIR", REPO / ".slurm"))
TINY_JOB = ["model=tiny_10k", "train.batch_size=4", "train.eval_tokens=2048", "train.threads=1"]
# timeout_min above 10: below that submitit counts every USR2 as a time-out, not a preemption
SLURM = ["hydra/launcher=slurm", "hydra.launcher.timeout_min=30"]


def launch(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "scaling-train"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float, sweep_dir: Path) -> tuple[str, str]:
    """The sweep's stdout and stderr once it ends; on a time-out, the jobs' logs for the failure report."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        logs = "\n".join(p.read_text()[-1500:] for p in sweep_dir.glob(".submitit/*/*/*.err"))
        pytest.fail(f"sweep still running after {timeout} s; job logs:\n{logs}")


def job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM job ids of a sweep's started jobs (`12_0`, `12_1`, ...), from submitit's log folders."""
    return sorted(p.parent.name for p in sweep_dir.glob(".submitit/*/*/*_log.out"))


def sacct(*args: str, env: dict) -> list[list[str]]:
    out = subprocess.run(
        ["sacct", "-n", "-P", *args], capture_output=True, text=True, env=env, timeout=30, check=True
    ).stdout
    return [line.split("|") for line in out.splitlines() if line]


def final_states(job: str, env: dict, history: bool = False) -> dict[str, str] | list[str]:
    """SLURM's record of a job once it has ended (a job's result can be read before SLURM says COMPLETED)."""
    deadline = time.monotonic() + 60
    while True:
        rows = sacct(*(["-D"] if history else []), "-X", "-j", job, "-o", "JobID,State", env=env)
        if not any(state in ("PENDING", "RUNNING", "COMPLETING") for _, state in rows):
            return [state for _, state in rows] if history else dict(rows)
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)


def wait_for(path_glob: str, root: Path, proc: subprocess.Popen, timeout: float = 90) -> Path:
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(root.glob(path_glob))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(
                f"sweep ended before {path_glob} appeared:\n{proc.stdout.read()}\n{proc.stderr.read()}"
            )
        assert time.monotonic() < deadline, f"no {path_glob} after {timeout} s"
        time.sleep(0.2)
