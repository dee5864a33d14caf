"""Sweeps on a real one-node SLURM cluster (started by `bash tests/slurm.sh start`, as `make test` does).

Each test launches `scaling-train -m ... hydra/launcher=slurm` as a user would and checks what SLURM
(`sacct`) and the run folders say: the sweep is one job array, a preempted run (USR2, as SLURM sends on
preemption) checkpoints, requeues and ends with the steps of an uninterrupted run, a relaunch submits
nothing, and a cancelled job is reported as cancelled without the sweep hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("SCALING_SLURM_DIR", REPO / ".slurm"))
BIN = Path(sys.executable).parent
TINY = ["model=tiny_10k", "train.batch_size=4", "train.eval_tokens=2048", "train.threads=1"]
# timeout_min above 10: below that submitit counts every USR2 as a time-out, not a preemption
SLURM = ["hydra/launcher=slurm", "hydra.launcher.timeout_min=30"]


@pytest.fixture(scope="module")
def env():
    """The environment of a SLURM client of the test cluster; starts the cluster if it is not up."""
    start = subprocess.run(
        ["bash", str(REPO / "tests/slurm.sh"), "start"], capture_output=True, text=True, timeout=900
    )
    assert start.returncode == 0, start.stdout + start.stderr
    yield dict(os.environ, SLURM_CONF=str(STATE / "etc/slurm.conf"))
    if "already running" not in start.stdout:  # leave the cluster as this module found it
        subprocess.run(["bash", str(REPO / "tests/slurm.sh"), "stop"], capture_output=True, timeout=120)


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


def test_sweep_is_one_job_array_and_a_relaunch_submits_nothing(tmp_path, env):
    started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    sweep_dir = tmp_path / "array"
    args = ["-m", *TINY, "train.tokens=20k,40k", "train.evals=1", *SLURM, f"hydra.sweep.dir={sweep_dir}"]
    out, err = finish(launch(args, tmp_path, env), 180, sweep_dir)
    assert "2 runs, 2 launched" in out and "2 completed" in out, out + err[-3000:]

    ids = job_ids(sweep_dir)
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_0", f"{array}_1"]  # one array of two tasks
    assert final_states(array, env) == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED"}
    summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert sorted(s["tokens"] for s in summaries) == [19968, 39936]

    jobs_before = sacct("-X", "-S", started, "-o", "JobID", env=env)
    again = subprocess.run(
        [str(BIN / "scaling-train"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "all 2 runs already finished; nothing to train" in again.stdout
    assert job_ids(sweep_dir) == ids
    assert sacct("-X", "-S", started, "-o", "JobID", env=env) == jobs_before  # nothing submitted


@pytest.mark.parametrize("preempt", ["scancel --signal=USR2", "a job in the higher-priority partition"])
def test_preempted_run_requeues_and_resumes_from_its_checkpoint(tmp_path, env, preempt):
    config = [*TINY, "train.tokens=200k", "train.evals=4"]
    sweep_dir = tmp_path / "preempt"
    # both cores: a job of partition `urgent` then needs this one's (partition `debug`) to run
    whole_node = ["hydra.launcher.cpus_per_task=2"]
    proc = launch(["-m", *config, *SLURM, *whole_node, f"hydra.sweep.dir={sweep_dir}"], tmp_path, env)
    # the same run, uninterrupted, on this machine meanwhile: the reference
    reference = launch([*config, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path, env)

    wait_for("*/metrics.jsonl", sweep_dir, proc)  # the first of four evaluations: a quarter done
    (job,) = job_ids(sweep_dir)
    if preempt.startswith("scancel"):
        command = ["scancel", "--signal=USR2", job]
    else:  # SLURM preempts (requeues) the debug job and sends it USR2 first (preempt_send_user_signal)
        command = ["sbatch", "-p", "urgent", "--cpus-per-task=2", "-o", "/dev/null", "--wrap", "sleep 1"]
    subprocess.run(command, env=env, check=True, timeout=30, capture_output=True)
    out, err = finish(proc, 240, sweep_dir)
    assert proc.returncode == 0 and "1 completed" in out, out + err[-3000:]
    ref_out, ref_err = reference.communicate(timeout=120)
    assert reference.returncode == 0, ref_err[-3000:]

    (summary_path,) = sweep_dir.glob("*/summary.json")
    run = json.loads(summary_path.read_text())
    ref = json.loads((tmp_path / "reference/summary.json").read_text())
    assert run["status"] == ref["status"] == "completed"
    assert run["resumes"] == 1 and ref["resumes"] == 0  # it restarted once, from its checkpoint
    assert run["steps_done"] == ref["steps_done"] == ref["steps"]
    assert run["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-6)
    metrics = (summary_path.parent / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in metrics]
    assert steps == sorted(set(steps)) and len(steps) == 4  # resumed where it stopped: no step trained twice
    # SLURM's own record: the job went back to the queue once, then completed
    history = final_states(job, env, history=True)
    assert len(history) == 2 and history[0] in ("REQUEUED", "PREEMPTED") and history[1] == "COMPLETED", (
        history
    )


def test_cancelled_job_is_reported_as_such_and_the_sweep_ends(tmp_path, env):
    sweep_dir = tmp_path / "cancel"
    args = ["-m", *TINY, "train.tokens=20k,5M", "train.evals=2", *SLURM, f"hydra.sweep.dir={sweep_dir}"]
    proc = launch(args, tmp_path, env)
    long_run = wait_for("*train.tokens=5M*/summary.json", sweep_dir, proc).parent  # it is training
    job = next(j for j in job_ids(sweep_dir) if j.endswith("_1"))
    cancelled_at = time.monotonic()
    subprocess.run(["scancel", job], env=env, check=True, timeout=30)
    out, err = finish(proc, 120, sweep_dir)
    assert time.monotonic() - cancelled_at < 90  # reported, not waited on forever
    assert proc.returncode == 1, out + err[-3000:]
    assert "1 completed, 1 cancelled" in out
    assert f"cancelled {long_run}" in out and f"SLURM job {job} ended CANCELLED" in out
    recorded = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert recorded["counts"]["cancelled"] == 1 and recorded["counts"]["completed"] == 1


def test_two_tasks_train_one_run_data_parallel(tmp_path, env):
    """tasks_per_node=2 (what gpus_per_node=2 implies): one run, two DDP processes (gloo on CPU)."""
    sweep_dir = tmp_path / "ddp"
    args = ["-m", *TINY, "train.tokens=40k", "train.evals=1", *SLURM, "hydra.launcher.tasks_per_node=2"]
    out, err = finish(launch([*args, f"hydra.sweep.dir={sweep_dir}"], tmp_path, env), 180, sweep_dir)
    assert "1 completed" in out, out + err[-3000:]
    (summary,) = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert summary["world_size"] == 2 and summary["steps_done"] == summary["steps"]


def test_gpus_ask_one_task_per_gpu_and_a_refused_array_is_one_error(tmp_path, env):
    started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    jobs_before = sacct("-X", "-S", started, "-o", "JobID", env=env)
    sweep_dir = tmp_path / "gpus"
    args = [
        "-m",
        *TINY,
        "train.tokens=40k",
        *SLURM,
        "hydra.launcher.gpus_per_node=2",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = subprocess.run(
        [str(BIN / "scaling-train"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        "error: SLURM refused the job array, nothing submitted: "
        "sbatch: error: Invalid generic resource (gres) specification"
    ]  # this cluster has no GPUs
    (script,) = sweep_dir.glob(".submitit/*/.submission_file_*.sh")
    assert "#SBATCH --gpus-per-node=2" in script.read_text()
    assert "#SBATCH --ntasks-per-node=2" in script.read_text()  # one DDP process per GPU
    assert sacct("-X", "-S", started, "-o", "JobID", env=env) == jobs_before
