"""Sweeps on this machine: real `scaling-train -m` runs of tiny GPTs (SLURM: tests/test_slurm.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from helpers import BIN, CliResult, assert_usage_error, run_process
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser

from scaling.errors import UsageError
from scaling.training.config import MAX_DIRNAME, plan_run, register_resolvers, run_dirname
from scaling.training.sweep import (
    PlannedRun,
    RunOutcome,
    SweepSummary,
    interruptible,
    one_line,
    outcome,
    plan_sweep,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "sweeps"
# Tiny and fast: 4 sequences of 128 tokens per step, one evaluation (at the end) on 2k tokens, one thread.
TINY = ["train.batch_size=4", "train.evals=1", "train.eval_tokens=2048", "train.threads=1"]


def scaling_train(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> CliResult:
    return run_process([BIN / "scaling-train", *args], cwd=cwd, env=env, timeout=timeout)


def summaries(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))}


@pytest.mark.slow
def test_isoflop_sweep_hits_budgets_and_relaunch_trains_nothing(tmp_path):
    budgets = (5e9, 1e10)  # C in FLOPs: 80k-160k tokens for N = 10k, 26k-52k for N = 32k
    sweep_dir = tmp_path / "iso"
    args = ["-m", "+sweep=isoflop", "sweep.compute=5G,10G", "model=tiny_10k,tiny_30k", *TINY]
    first = scaling_train(*args, "hydra/launcher=local", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert first.status == 0, first.err[-3000:]
    assert "4 runs, 4 launched" in first.out and "4 completed" in first.out

    runs = summaries(sweep_dir)
    assert len(runs) == 4 and {s["status"] for s in runs.values()} == {"completed"}
    for name, s in runs.items():
        requested = 5e9 if "sweep.compute=5G" in name else 1e10
        assert s["flops"] == 6 * s["n_params"] * s["tokens"]
        assert abs(s["flops"] / requested - 1) < 0.01, (name, s["flops"])

    csv = tmp_path / "runs.csv"
    collected = subprocess.run(
        [str(BIN / "scaling"), "runs", str(sweep_dir), "--csv", str(csv)], capture_output=True, text=True
    )
    assert collected.returncode == 0, collected.stderr
    table = pd.read_csv(csv)
    assert len(table) == 4 and set(table["status"]) == {"completed"}
    for budget in budgets:  # two IsoFLOP profiles of two sizes each, C within 1 % of the budget
        group = table[(table["C"] / budget - 1).abs() < 0.01]
        assert sorted(group["N"]) == [10160, 32112]

    before = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/*") if p.is_file()}
    again = scaling_train(*args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert again.status == 0, again.err[-3000:]
    assert "all 4 runs already finished; nothing to train" in again.out
    assert {p: p.stat().st_mtime_ns for p in before} == before  # not one run folder file touched


BAD_INPUT = {
    "unknown sweep": (["-m", "+sweep=nope"], "Could not find 'sweep/nope'"),
    "unknown preset": (["-m", "+sweep=model_size", "model=tiny_10k,gpt3_nope"], "model/gpt3_nope"),
    "budget below the smallest model": (
        ["-m", "+sweep=isoflop", "sweep.compute=1M,2M", "model=tiny_10k,tiny_30k"],
        "4 of 4 sweep points cannot run",
    ),
    "impossible shape": (["-m", "model=tiny_10k", "model.n_head=3"], "not divisible by model.n_head=3"),
    "slurm absent": (["-m", "+sweep=grid", "hydra/launcher=slurm"], "`sinfo` is not installed"),
}


@pytest.mark.slow
def test_bad_input_is_one_error_line_exit_2_and_launches_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env["PATH"] = str(BIN)  # no sinfo, sbatch, ... on the PATH: a machine without SLURM

    def attempt(case: str) -> tuple[str, CliResult, Path]:
        args, _ = BAD_INPUT[case]
        sweep_dir = tmp_path / case.replace(" ", "_")
        return case, scaling_train(*args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, env=env), sweep_dir

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, BAD_INPUT))
    for case, proc, sweep_dir in results:
        assert_usage_error(proc, BAD_INPUT[case][1])
        assert not sweep_dir.exists(), case  # nothing launched, nothing written
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_diverged_run_is_reported_and_not_retried_unless_asked(tmp_path):
    sweep_dir = tmp_path / "lr"
    args = [
        "-m",
        "model=tiny_10k",
        "train.tokens=10k",
        "train.lr=3e-3,1e9",
        *TINY,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    first = scaling_train(*args, cwd=tmp_path)
    assert first.status == 0, first.err[-3000:]  # a diverged run is a result, not an error
    assert "1 completed, 1 diverged" in first.out
    diverged = sweep_dir / (
        "model=tiny_10k,train.batch_size=4,train.eval_tokens=2048,train.evals=1,train.lr=1000000000.0,train.tokens=10k"
    )
    assert f"diverged  {diverged}" in first.out
    assert json.loads((sweep_dir / "sweep_summary.json").read_text())["counts"]["diverged"] == 1

    again = scaling_train(*args, cwd=tmp_path)
    assert "all 2 runs already finished; nothing to train" in again.out, again.out

    retry = scaling_train(*args, "hydra.sweeper.retry_diverged=true", cwd=tmp_path)
    assert "2 runs, 1 launched, 1 done before" in retry.out, retry.out + retry.err[-2000:]
    assert len(list(sweep_dir.glob("*.diverged-*"))) == 1  # the failed attempt is kept beside the retry


@pytest.mark.slow
def test_sigterm_checkpoints_and_a_rerun_resumes_to_the_same_steps(tmp_path):
    args = ["model=tiny_10k", "train.tokens=250k", "train.evals=2", *TINY[:1], *TINY[2:]]
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [str(BIN / "scaling-train"), *args, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / "metrics.jsonl").exists():  # the first evaluation: half way
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM: checkpoint kept" in err
    stopped = json.loads((run_dir / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and (run_dir / "ckpt.pt").exists()
    assert stopped["steps_done"] < stopped["steps"]

    rerun = scaling_train(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert rerun.status == 0, rerun.err[-3000:]
    done = json.loads((run_dir / "summary.json").read_text())
    assert done["status"] == "completed" and done["resumes"] == 1
    assert done["steps_done"] == done["steps"] == stopped["steps"]


def test_run_dirname_is_one_safe_folder_name():
    assert run_dirname("") == "default"
    assert run_dirname("data.name=/data/web,model=tiny_1m") == "data.name=%2Fdata%2Fweb,model=tiny_1m"
    long = ",".join(f"train.k{i}={i}" for i in range(40))
    short = run_dirname(long)
    assert len(short) == MAX_DIRNAME and short != run_dirname(long + "0")


def test_one_line_flattens_hydra_messages():
    text = "In 'config': Could not find 'sweep/x'\n\nAvailable options in 'sweep':\n\tgrid\n\tdemo"
    text += "\nConfig search path:\n\tprovider=main"
    assert (
        one_line(Exception(text))
        == "In 'config': Could not find 'sweep/x'; Available options in 'sweep': grid, demo"
    )


def test_summary_counts_and_names_every_unfinished_run(tmp_path):
    folders = {s: tmp_path / s for s in ("ok", "nan", "cut", "boom")}
    for status, folder in (("completed", "ok"), ("diverged", "nan"), ("running", "cut")):
        folders[folder].mkdir()
        (folders[folder] / "summary.json").write_text(json.dumps({"status": status}))
    cancelled = RuntimeError("SLURM job 7_1 ended CANCELLED by 0 (no result: log)")
    runs = (
        outcome(PlannedRun(("a=1",), folders["ok"], "completed"), None, skipped=True),
        outcome(PlannedRun(("a=2",), folders["nan"], None), None, skipped=False),
        outcome(PlannedRun(("a=3",), folders["cut"], None), cancelled, skipped=False),
        outcome(PlannedRun(("a=4",), folders["boom"], None), ValueError("bad"), skipped=False),
    )
    assert [r.status for r in runs] == ["completed", "diverged", "cancelled", "failed"]
    summary = SweepSummary(tmp_path, runs)
    text = summary.format()
    assert "4 runs, 3 launched, 1 done before (skipped)" in text
    assert "1 completed, 1 diverged, 1 failed, 1 cancelled" in text
    assert f"cancelled {folders['cut']}" in text and "relaunch resumes it" in text
    assert not summary.ok and RunOutcome(tmp_path, "diverged") != runs[1]
    assert json.loads(summary.save().read_text())["counts"]["cancelled"] == 1


def test_plan_lists_every_bad_point():
    def load(overrides):
        raise UsageError(f"bad {overrides[0]}")

    with pytest.raises(UsageError, match=r"2 of 2 sweep points cannot run.*\[x=1\] bad x=1; \[x=2\] bad x=2"):
        plan_sweep([["x=1"], ["x=2"]], load)


@pytest.mark.slow
def test_every_sweep_of_the_menu_expands_into_runs_that_pass_the_trainer_checks():
    menu = sorted(p.stem for p in (CONFIG_DIR / "sweep").glob("*.yaml"))
    assert {"model_size", "data_size", "grid", "isoflop", "epochs", "demo"} <= set(menu)
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        for name in menu:
            sweep = compose("config", overrides=[f"+sweep={name}"], return_hydra_config=True)
            axes = [f"{k}={v}" for k, v in sweep.hydra.sweeper.params.items()]
            (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(axes), None)
            assert len(jobs) >= 4, name
            for job in jobs:
                cfg = compose("config", overrides=[f"+sweep={name}", *job], return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)  # as in the job: cooldowns reads ${hydra:job...}
                plan = plan_run(cfg)
                assert plan.steps >= 10, (name, job)


def test_dry_run_lists_the_demo_and_writes_nothing(tmp_path):
    proc = scaling_train("-m", "+sweep=demo", "hydra.sweeper.dry_run=true", cwd=tmp_path)
    assert proc.status == 0, proc.err[-2000:]
    head, *runs = proc.out.strip().splitlines()[-19:]
    assert head == "sweep runs/demo: 18 runs (dry run: nothing launched)"
    sizes = {int(line.split("N=")[1].split()[0].replace(",", "")) for line in runs}
    budgets = {line.split("sweep.compute=")[1].split(",")[0] for line in runs}
    assert len(sizes) == 6 and max(sizes) / min(sizes) >= 10**1.5 and len(budgets) == 3
    assert not (tmp_path / "runs").exists()


def test_a_stop_signal_ends_the_process_even_if_the_run_then_fails():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ValueError), interruptible() as stop:  # no signal: errors pass through untouched
        raise ValueError("no signal")
    with pytest.raises(SystemExit) as ended, interruptible() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        raise OSError("the checkpoint could not be written")
    assert ended.value.code == 128 + signal.SIGTERM  # the sweep does not go on to its next run
    assert signal.getsignal(signal.SIGTERM) is before


def test_dry_run_lists_the_lr_batch_grid(tmp_path):
    proc = scaling_train("-m", "+sweep=lr_batch", "hydra.sweeper.dry_run=true", cwd=tmp_path)
    assert proc.status == 0, proc.err[-2000:]
    head, *runs = proc.out.strip().splitlines()[-81:]
    assert head == "sweep runs/lr_batch: 80 runs (dry run: nothing launched)"
    def axis(line: str, key: str) -> str:
        return line.split(f"{key}=")[1].split(",")[0]

    scales = {(axis(line, "sweep.lr_scale"), axis(line, "sweep.batch_scale")) for line in runs}
    assert len(scales) == 20 and min(int(line.split("steps")[0].split()[-1]) for line in runs) >= 10
