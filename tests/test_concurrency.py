"""Several runs of one sweep writing into one sweep folder at once (the local parallel launcher, 4 worker
processes), while `scaling runs` and `scaling report` read that folder in a loop; half the runs diverge.

Readers must never crash and never see a half-written run: every run they list is complete (`completed`
or `diverged`, with its numbers) or marked `running`. At the end no run is lost or trained twice, the
sweep went on past its diverged runs, and a fit of the folder leaves them out with a warning naming them.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import BIN, CliResult, assert_usage_error, check_snapshot, run_process

from scaling.errors import UsageError
from scaling.runs.table import collect_runs

WRITERS = 4
# 2 sizes x 2 budgets x 2 learning rates = 8 runs; lr 1e9 diverges in its first steps.
SWEEP = ["-m", "model=tiny_10k,tiny_30k", "train.tokens=60k,120k", "train.lr=3e-3,1e9",
         "train.batch_size=8", "train.evals=4", "train.eval_tokens=2048", "train.threads=1",
         "hydra/launcher=local", f"hydra.launcher.n_jobs={WRITERS}"]  # fmt: skip
RUNS, DIVERGED = 8, 4


@pytest.mark.slow
def test_parallel_writers_and_readers_then_divergence_is_excluded_by_name(tmp_path, cli):
    sweep_dir = tmp_path / "sweep"
    sweep = subprocess.Popen(
        [str(BIN / "scaling-train"), *SWEEP, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reports: list[CliResult] = []

    def report_loop() -> None:  # a second reader, in its own process: the whole report, again and again
        while sweep.poll() is None:
            reports.append(run_process(
                [BIN / "scaling", "report", sweep_dir, "--out", tmp_path / "report", "--bootstrap", "0",
                 "--law", "kaplan_n"],
            ))  # fmt: skip
            time.sleep(2.0)

    reporter = threading.Thread(target=report_loop)
    reporter.start()
    snapshots, most_running = 0, 0
    try:
        while sweep.poll() is None:
            try:
                table = collect_runs(sweep_dir)
            except UsageError:  # no run folder yet
                time.sleep(0.05)
                continue
            most_running = max(most_running, check_snapshot(table)["running"])
            status, _, err = cli("runs", sweep_dir, "--csv", tmp_path / "runs.csv")
            assert status == 0 and "Traceback" not in err, err
            snapshots += 1
            time.sleep(0.05)
        out, err = sweep.communicate(timeout=600)
    finally:
        reporter.join(timeout=600)
    assert sweep.returncode == 0, err[-3000:]  # diverged runs are results: the sweep went on and succeeded
    assert f"{RUNS} runs, {RUNS} launched" in out
    assert f"{RUNS - DIVERGED} completed, {DIVERGED} diverged" in out

    # the writers overlapped (a run writes from its config.yaml to its final summary.json) and the readers
    # took many snapshots, some while runs were half way, without a crash
    ends = sweep_dir.glob("*/summary.json")
    spans = [((p.parent / "config.yaml").stat().st_mtime, p.stat().st_mtime) for p in ends]
    overlap = max(sum(start <= t <= end for start, end in spans) for t, _ in spans)
    print(f"{len(spans)} runs, at most {overlap} writing at once; {snapshots} reader snapshots, "
          f"at most {most_running} runs seen running in one")
    assert overlap >= 2 and snapshots >= 5 and most_running >= 1, (overlap, snapshots, most_running)
    for done in reports:
        assert "Traceback" not in done.err and done.status in (0, 2), done.err[-3000:]
        if done.status == 2:  # too few completed runs yet: one error line
            assert_usage_error(done, warnings=True)
    if any(done.status == 0 for done in reports):
        assert (tmp_path / "report" / "report.md").is_file()

    # nothing lost, nothing twice
    final = collect_runs(sweep_dir)
    assert len(final) == RUNS and final["run"].is_unique
    done = {"completed": RUNS - DIVERGED, "diverged": DIVERGED, "running": 0, "interrupted": 0}
    assert check_snapshot(final) == done
    recorded = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert recorded["counts"]["completed"] == RUNS - DIVERGED and recorded["counts"]["diverged"] == DIVERGED
    diverged = sorted(final.loc[final["status"] == "diverged", "run"])
    for run in diverged:
        summary = json.loads((Path(run) / "summary.json").read_text())
        assert "train.lr=1000000000.0" in run and summary["val_loss"] is None
        assert 1 <= summary["diverged_at_step"] <= summary["steps"]

    # a fit of the folder leaves the diverged runs out, naming them
    status, _, err = cli("fit", sweep_dir, "--law", "kaplan_n", "--json", tmp_path / "fit.json")
    assert status == 0, err
    warning = next(line for line in err.splitlines() if "with status diverged" in line)
    assert warning.startswith(f"warning: excluded {DIVERGED} run(s) with status diverged: ")
    assert all(run in warning for run in diverged)
    assert json.loads((tmp_path / "fit.json").read_text())["n_points"] == RUNS - DIVERGED
