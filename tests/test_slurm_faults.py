"""SLURM faults on the real one-node cluster: a task of a job array killed on its node (SIGKILL of the
job's Python process, as an out-of-memory killer or a dying node would) and a task requeued by SLURM
(`scontrol requeue`) while training, a reader of the sweep folder looking on. Either way every run of the
sweep ends completed exactly once: finished runs are never trained again, the interrupted run resumes
from its checkpoint, and its metrics hold each evaluation once. (A job cancelled by the user is
tests/test_slurm.py's.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import BIN, SLURM, TINY_JOB, check_snapshot, final_states, finish, job_ids, launch, wait_for

from scaling.runs.table import collect_runs

pytestmark = pytest.mark.slurm

# Two runs: a short one (done in seconds) and one long enough to be hit while it trains.
RUNS = [*TINY_JOB, "train.evals=4", "train.tokens=20k,200k"]


def summaries(sweep_dir: Path) -> dict[str, dict]:
    """Each run's summary by its token budget (the last override of its folder name)."""
    found = sweep_dir.glob("*/summary.json")
    return {p.parent.name.rsplit("=", 1)[-1]: json.loads(p.read_text()) for p in found}


def steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def slurm(*command: str, client: dict) -> str:
    return subprocess.run(command, capture_output=True, text=True, env=client, timeout=30, check=True).stdout


def training_process(job: str, client: dict) -> int:
    """The PID of the Python process of array task `job` (its job step 0, not the batch script)."""
    raw = slurm("squeue", "-h", "-j", job, "-o", "%A", client=client).split()[0]  # the task's own job id
    listing = slurm("scontrol", "listpids", raw, client=client).splitlines()[1:]
    pids = [int(pid) for pid, _, step, *_ in (line.split() for line in listing) if step == "0"]
    python = [pid for pid in pids if b"submitit.core._submit" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(python) == 1, listing
    return python[0]


def assert_completed_once(sweep_dir: Path, interrupted: str) -> None:
    runs = summaries(sweep_dir)
    assert {k: s["status"] for k, s in runs.items()} == {"20k": "completed", "200k": "completed"}
    long = runs["200k"]
    assert long["resumes"] == 1 and long["steps_done"] == long["steps"], long  # resumed once, to the end
    assert runs["20k"]["resumes"] == 0
    run_dir = next(sweep_dir.glob("*train.tokens=200k"))
    assert steps(run_dir) == sorted(set(steps(run_dir))) and len(steps(run_dir)) == 4  # each evaluation once
    assert not (run_dir / "ckpt.pt").exists(), interrupted


def test_killed_array_task_is_reported_and_a_relaunch_completes_every_run_once(tmp_path, slurm_env):
    sweep_dir = tmp_path / "killed"
    args = ["-m", *RUNS, *SLURM, f"hydra.sweep.dir={sweep_dir}"]
    proc = launch(args, tmp_path, slurm_env)
    run_dir = wait_for("*train.tokens=200k/ckpt.pt", sweep_dir, proc).parent  # a quarter trained
    (job,) = [j for j in job_ids(sweep_dir) if j.endswith("_1")]
    os.kill(training_process(job, client=slurm_env), signal.SIGKILL)
    killed_at = time.monotonic()
    out, err = finish(proc, 180, sweep_dir)
    assert time.monotonic() - killed_at < 120  # reported, not waited on
    assert proc.returncode == 1 and "1 completed, 1 failed" in out, out + err[-3000:]
    assert f"SLURM job {job} ended FAILED" in out
    assert final_states(job, slurm_env) == {job: "FAILED"}
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"  # checkpoint kept

    short = next(sweep_dir.glob("*train.tokens=20k/summary.json"))
    before = short.stat().st_mtime_ns
    jobs_before = len(job_ids(sweep_dir))
    again = subprocess.run(
        [str(BIN / "scaling-train"), *args],
        cwd=tmp_path, env=slurm_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert "2 runs, 1 launched, 1 done before" in again.stdout and "2 completed" in again.stdout
    assert len(job_ids(sweep_dir)) == jobs_before + 1  # only the killed run went to SLURM again
    assert short.stat().st_mtime_ns == before  # the finished run was not touched
    assert_completed_once(sweep_dir, "killed")


def test_requeued_array_task_resumes_and_completes_once(tmp_path, slurm_env):
    sweep_dir = tmp_path / "requeued"
    proc = launch(["-m", *RUNS, *SLURM, f"hydra.sweep.dir={sweep_dir}"], tmp_path, slurm_env)
    wait_for("*train.tokens=200k/ckpt.pt", sweep_dir, proc)
    (job,) = [j for j in job_ids(sweep_dir) if j.endswith("_1")]
    slurm("scontrol", "requeue", job, client=slurm_env)
    snapshots = 0
    while proc.poll() is None:  # a reader meanwhile sees complete runs or runs marked running
        check_snapshot(collect_runs(sweep_dir))
        snapshots += 1
        time.sleep(0.2)
    out, err = finish(proc, 240, sweep_dir)
    assert snapshots >= 3
    assert proc.returncode == 0 and "2 completed" in out, out + err[-3000:]
    assert final_states(job, slurm_env, history=True) == ["REQUEUED", "COMPLETED"]
    short_job = job[:-1] + "0"
    assert final_states(short_job, slurm_env, history=True) == ["COMPLETED"]  # the other task ran once
    assert_completed_once(sweep_dir, "requeued")
