"""Sweeps on a real one-node SLURM cluster (started by `bash tests/slurm.sh start`, as `make test` does).

Each test launches `scaling-train -m ... hydra/launcher=slurm` as a user would and checks what SLURM
(`sacct`) and the run folders say: the sweep is one job array, a preempted run (USR2, as SLURM sends on
preemption) checkpoints, requeues and ends with the steps of an uninterrupted run, a relaunch submits
nothing, and a cancelled job is reported as cancelled without the sweep hanging.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime

import pytest
from helpers import BIN, SLURM, TINY_JOB, final_states, finish, job_ids, launch, sacct, wait_for

pytestmark = pytest.mark.slurm


def test_sweep_is_one_job_array_and_a_relaunch_submits_nothing(tmp_path, slurm_env):
    started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    sweep_dir = tmp_path / "array"
    args = ["-m", *TINY_JOB, "train.tokens=20k,40k", "train.evals=1", *SLURM, f"hydra.sweep.dir={sweep_dir}"]
    out, err = finish(launch(args, tmp_path, slurm_env), 180, sweep_dir)
    assert "2 runs, 2 launched" in out and "2 completed" in out, out + err[-3000:]

    ids = job_ids(sweep_dir)
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_0", f"{array}_1"]  # one array of two tasks
    assert final_states(array, slurm_env) == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED"}
    summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert sorted(s["tokens"] for s in summaries) == [19968, 39936]

    jobs_before = sacct("-X", "-S", started, "-o", "JobID", env=slurm_env)
    again = subprocess.run(
        [str(BIN / "scaling-train"), *args],
        cwd=tmp_path,
        env=slurm_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "all 2 runs already finished; nothing to train" in again.stdout
    assert job_ids(sweep_dir) == ids
    assert sacct("-X", "-S", started, "-o", "JobID", env=slurm_env) == jobs_before  # nothing submitted


@pytest.mark.parametrize("preempt", ["scancel --signal=USR2", "a job in the higher-priority partition"])
def test_preempted_run_requeues_and_resumes_from_its_checkpoint(tmp_path, slurm_env, preempt):
    config = [*TINY_JOB, "train.tokens=200k", "train.evals=4"]
    sweep_dir = tmp_path / "preempt"
    # both cores: a job of partition `urgent` then needs this one's (partition `debug`) to run
    whole_node = ["hydra.launcher.cpus_per_task=2"]
    proc = launch(["-m", *config, *SLURM, *whole_node, f"hydra.sweep.dir={sweep_dir}"], tmp_path, slurm_env)
    # the same run, uninterrupted, on this machine meanwhile: the reference
    reference = launch([*config, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path, slurm_env)

    wait_for("*/metrics.jsonl", sweep_dir, proc)  # the first of four evaluations: a quarter done
    (job,) = job_ids(sweep_dir)
    if preempt.startswith("scancel"):
        command = ["scancel", "--signal=USR2", job]
    else:  # SLURM preempts (requeues) the debug job and sends it USR2 first (preempt_send_user_signal)
        command = ["sbatch", "-p", "urgent", "--cpus-per-task=2", "-o", "/dev/null", "--wrap", "sleep 1"]
    subprocess.run(command, env=slurm_env, check=True, timeout=30, capture_output=True)
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
    history = final_states(job, slurm_env, history=True)
    assert len(history) == 2 and history[0] in ("REQUEUED", "PREEMPTED") and history[1] == "COMPLETED", (
        history
    )


def test_cancelled_job_is_reported_as_such_and_the_sweep_ends(tmp_path, slurm_env):
    sweep_dir = tmp_path / "cancel"
    args = ["-m", *TINY_JOB, "train.tokens=20k,5M", "train.evals=2", *SLURM, f"hydra.sweep.dir={sweep_dir}"]
    proc = launch(args, tmp_path, slurm_env)
    long_run = wait_for("*train.tokens=5M*/summary.json", sweep_dir, proc).parent  # it is training
    job = next(j for j in job_ids(sweep_dir) if j.endswith("_1"))
    cancelled_at = time.monotonic()
    subprocess.run(["scancel", job], env=slurm_env, check=True, timeout=30)
    out, err = finish(proc, 120, sweep_dir)
    assert time.monotonic() - cancelled_at < 90  # reported, not waited on forever
    assert proc.returncode == 1, out + err[-3000:]
    assert "1 completed, 1 cancelled" in out
    assert f"cancelled {long_run}" in out and f"SLURM job {job} ended CANCELLED" in out
    recorded = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert recorded["counts"]["cancelled"] == 1 and recorded["counts"]["completed"] == 1


def test_two_tasks_train_one_run_data_parallel(tmp_path, slurm_env):
    """tasks_per_node=2 (what gpus_per_node=2 implies): one run, two DDP processes (gloo on CPU)."""
    sweep_dir = tmp_path / "ddp"
    args = ["-m", *TINY_JOB, "train.tokens=40k", "train.evals=1", *SLURM, "hydra.launcher.tasks_per_node=2"]
    out, err = finish(launch([*args, f"hydra.sweep.dir={sweep_dir}"], tmp_path, slurm_env), 180, sweep_dir)
    assert "1 completed" in out, out + err[-3000:]
    (summary,) = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert summary["world_size"] == 2 and summary["steps_done"] == summary["steps"]


def test_gpus_ask_one_task_per_gpu_and_a_refused_array_is_one_error(tmp_path, slurm_env):
    started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    jobs_before = sacct("-X", "-S", started, "-o", "JobID", env=slurm_env)
    sweep_dir = tmp_path / "gpus"
    args = [
        "-m",
        *TINY_JOB,
        "train.tokens=40k",
        *SLURM,
        "hydra.launcher.gpus_per_node=2",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = subprocess.run(
        [str(BIN / "scaling-train"), *args],
        cwd=tmp_path,
        env=slurm_env,
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
    assert sacct("-X", "-S", started, "-o", "JobID", env=slurm_env) == jobs_before
