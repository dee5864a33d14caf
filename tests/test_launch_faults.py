"""What users do to `scaling-train` that a crash test does not: launch a run twice (at once, or again
while the first is finishing), launch one sweep twice, relaunch an edited sweep, press Ctrl-C, fill the
disk, point a run at a read-only folder.

Real processes, real locks (flock on RUN/.lock), real signals (SIGINT to the process group, as a terminal
sends it), a real full file system (a 300 kB tmpfs in a private mount namespace) and real permissions (as
root, without the file-access override: setpriv drops CAP_DAC_OVERRIDE).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import BIN, assert_usage_error, run_process

from scaling.errors import UsageError
from scaling.io import read_jsonl
from scaling.training.config import compose_run_config
from scaling.training.lock import LOCK_FILE, hold_run_folder, is_locked, read_holder
from scaling.training.sweep import SUMMARY_FILE

# tiny_10k, 4 x 128 tokens a step, one thread: ~2-4 s for 60k tokens (117 steps) on a busy 2-core machine
TINY = ["model=tiny_10k", "train.batch_size=4", "train.eval_tokens=1024", "train.threads=1"]
RUN = [*TINY, "train.tokens=30k", "train.evals=10"]
TIMING = ("elapsed_s", "tokens_per_s", "flops_per_s", "mfu")


def launch(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "scaling-train"), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kw,
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def rows(run_dir: Path) -> list[dict]:
    try:
        return list(read_jsonl(run_dir / "metrics.jsonl"))
    except FileNotFoundError:
        return []


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def assert_trained_once(run_dir: Path, evals: int) -> dict:
    """Completed, never resumed (one writer from step 0 to the end), every evaluation once, in order."""
    done = summary(run_dir)
    assert done["status"] == "completed" and done["resumes"] == 0, done
    steps = [r["step"] for r in rows(run_dir)]
    assert steps == sorted(set(steps)) and len(steps) == evals, steps
    assert not (run_dir / "ckpt.pt").exists()
    return done


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, list[dict]]:
    """RUN trained without interruption, in this process."""
    from scaling.training.trainer import train

    run_dir = tmp_path_factory.mktemp("reference")
    train(compose_run_config(RUN), run_dir)
    return summary(run_dir), rows(run_dir)


def assert_same_as_reference(run_dir: Path, reference) -> None:
    ref, ref_rows = reference
    done = summary(run_dir)
    for key in ("status", "tokens", "steps", "steps_done", "flops", "train_loss", "val_loss"):
        assert done[key] == ref[key], key  # bitwise on CPU
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in rows(run_dir)]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in ref_rows]


# ---- one writer per run folder ---------------------------------------------------------------------
def hold_forever(run_dir: Path, ready) -> None:
    with hold_run_folder(run_dir, "config-a", lambda holder: None):
        ready.set()
        time.sleep(300)


def test_the_lock_names_its_holder_refuses_another_config_and_dies_with_a_killed_holder(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=hold_forever, args=(tmp_path, ready))
    holder.start()
    assert ready.wait(60)
    assert is_locked(tmp_path) and read_holder(tmp_path).pid == holder.pid
    refused = pytest.raises(UsageError, match=f"another config by pid {holder.pid} on ")
    with refused, hold_run_folder(tmp_path, "config-b", lambda holder: None):
        pass
    waits = []
    threading.Timer(1.0, os.kill, (holder.pid, signal.SIGKILL)).start()
    started = time.monotonic()
    with hold_run_folder(tmp_path, "config-a", waits.append):  # free once the holder is killed
        waited = time.monotonic() - started
        assert read_holder(tmp_path).pid == os.getpid()
    holder.join(10)
    assert [w.pid for w in waits] == [holder.pid] and 1.0 <= waited < 30, (waits, waited)
    assert not is_locked(tmp_path)


def test_two_launches_at_once_one_trains_the_other_waits_another_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    args = [*RUN, f"hydra.run.dir={run_dir}"]
    first, second = launch(args, tmp_path), launch(args, tmp_path)
    # a third launch, of another config, into the folder they train: refused at once, not waited out
    wait_for(lambda: (run_dir / LOCK_FILE).exists() and (run_dir / LOCK_FILE).stat().st_size > 0, first)
    other = run_process([BIN / "scaling-train", *args, "train.lr=2e-3"], cwd=tmp_path)
    refused_while_training = first.poll() is None and second.poll() is None
    (code1, out1, err1), (code2, out2, err2) = finish(first), finish(second)
    assert code1 == code2 == 0, err1[-2000:] + err2[-2000:]
    assert out1.startswith("completed: ") and out2.startswith("completed: "), out1 + out2
    waits = [line for line in (err1 + err2).splitlines() if line.startswith("waiting: ")]
    assert len(waits) == 1, err1 + err2  # exactly one launch waited, for the other one's pid
    writer = first if str(second.pid) not in waits[0] else second
    assert f"being trained by pid {writer.pid} on " in waits[0]
    assert_trained_once(run_dir, evals=10)

    line = assert_usage_error(other)
    assert re.match(r"error: run folder .* (is being trained with|holds a run with) another config", line)
    assert refused_while_training or "train.lr: " in line
    assert summary(run_dir)["lr"] != 2e-3


def test_relaunch_while_the_first_finishes_keeps_its_result(tmp_path):
    """The reported data loss: a second launch at ~85 % read `running`, reset the run and retrained it.

    The first launch is paused (SIGSTOP) at 85 % until the second has started and reached the run folder,
    so that they meet however fast or busy the machine is; then it goes on (SIGCONT) and finishes."""
    run_dir = tmp_path / "run"
    args = [*TINY, "train.tokens=60k", "train.evals=20", f"hydra.run.dir={run_dir}"]
    first = launch(args, tmp_path)
    wait_for(lambda: len(rows(run_dir)) >= 17, first)  # 85 % of the evaluations on disk
    os.kill(first.pid, signal.SIGSTOP)
    on_disk = len(rows(run_dir))
    with open(tmp_path / "second.err", "w") as err:
        second = subprocess.Popen([str(BIN / "scaling-train"), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=err, text=True)  # fmt: skip
    try:
        wait_for(lambda: "waiting: " in (tmp_path / "second.err").read_text(), second)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    code1, _, err1 = finish(first)
    finished = (run_dir / "summary.json").read_bytes(), (run_dir / "metrics.jsonl").read_bytes()
    code2, out2, _ = finish(second)
    err2 = (tmp_path / "second.err").read_text()
    print(f"second launch with {on_disk} of 20 evaluations on disk: {err2.strip()}")
    assert code1 == code2 == 0, err1[-2000:] + err2[-2000:]
    assert err2.startswith(f"waiting: run folder {run_dir} is being trained by pid {first.pid} on "), err2
    assert out2.startswith("completed: "), out2
    assert ((run_dir / "summary.json").read_bytes(), (run_dir / "metrics.jsonl").read_bytes()) == finished
    assert_trained_once(run_dir, evals=20)


def test_a_sweep_launched_twice_at_once_trains_each_run_once(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *TINY, "train.evals=4", "train.tokens=30k,20k", f"hydra.sweep.dir={sweep_dir}"]
    first, second = launch(args, tmp_path), launch(args, tmp_path)
    (code1, out1, err1), (code2, out2, err2) = finish(first), finish(second)
    assert code1 == code2 == 0, err1[-2000:] + err2[-2000:]
    assert "2 completed" in out1 and "2 completed" in out2, out1 + out2
    assert "waiting: " in err1 + err2  # they met on a run, and one waited for the other
    print(f"{(err1 + err2).count('waiting: ')} waits between the two launches")
    folders = sorted(p.parent for p in sweep_dir.glob("*/summary.json"))
    assert len(folders) == 2
    for run_dir in folders:
        assert_trained_once(run_dir, evals=4)


# ---- config identity in sweeps ---------------------------------------------------------------------
SWEEP_FILE = """# @package _global_
sweep:
  name: edited
train:
  lr: {lr}
hydra:
  sweeper:
    params:
      train.tokens: 10k,12k
"""


def test_an_edited_sweep_is_refused_naming_runs_and_keys_then_retrained_on_request(tmp_path):
    conf = tmp_path / "conf"
    (conf / "sweep").mkdir(parents=True)
    sweep_file = conf / "sweep" / "edited.yaml"
    sweep_dir = tmp_path / "runs" / "edited"
    args = ["-m", "--config-dir", str(conf), "+sweep=edited", *TINY, "train.evals=2",
            f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    sweep_file.write_text(SWEEP_FILE.format(lr=0.003))
    first = subprocess.run([str(BIN / "scaling-train"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0 and "2 completed" in first.stdout, first.stderr[-2000:]
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}

    sweep_file.write_text(SWEEP_FILE.format(lr=0.002))
    edited = run_process([BIN / "scaling-train", *args], cwd=tmp_path)
    line = assert_usage_error(edited, "trained with another config", "train.lr: 0.003 -> 0.002 in ",
                              "hydra.sweeper.retrain_changed=true")  # fmt: skip
    assert line.startswith("error: 2 run(s) in ")
    for folder in sweep_dir.glob("*/summary.json"):
        assert folder.parent.name in line
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before  # nothing touched

    retrain = subprocess.run(
        [str(BIN / "scaling-train"), *args, "hydra.sweeper.retrain_changed=true"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert retrain.returncode == 0 and "2 runs, 2 launched" in retrain.stdout, retrain.stderr[-2000:]
    assert {summary(p.parent)["lr"] for p in sweep_dir.glob("*/summary.json")} == {0.002}
    kept = list((sweep_dir / ".replaced").glob("*/*/summary.json"))
    assert len(kept) == 2 and {json.loads(p.read_text())["lr"] for p in kept} == {0.003}
    collected = subprocess.run([str(BIN / "scaling"), "runs", str(sweep_dir)], capture_output=True, text=True)
    assert collected.returncode == 0 and "2 completed" in collected.stdout, collected.stdout  # not the old


# ---- Ctrl-C ----------------------------------------------------------------------------------------
def ctrl_c(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole foreground process group


def test_ctrl_c_is_one_line_status_interrupted_read_only_refused_resume_exact(tmp_path, reference):
    run_dir = tmp_path / "run"
    args = [*RUN, f"hydra.run.dir={run_dir}"]
    proc = launch(args, tmp_path, start_new_session=True)
    wait_for(lambda: len(rows(run_dir)) >= 3, proc)
    ctrl_c(proc)
    code, out, err = finish(proc)
    assert code == 128 + signal.SIGINT, err[-2000:]
    stopped = summary(run_dir)
    step = stopped["steps_done"]
    assert err.splitlines() == [f"interrupted at step {step}; rerun the same command to resume"]
    assert stopped["status"] == "interrupted" and 0 < stopped["steps_done"] < stopped["steps"]
    assert (run_dir / "ckpt.pt").exists()
    table = subprocess.run([str(BIN / "scaling"), "runs", str(tmp_path)], capture_output=True, text=True)
    assert "1 interrupted" in table.stdout, table.stdout + table.stderr

    # The interrupted folder made read-only (its folder only, then every file too): one error line each
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for read_only in ([run_dir], [run_dir, *run_dir.rglob("*")]):
        for path in read_only:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            command = without_file_access_override([str(BIN / "scaling-train"), *args])
            done = run_process(command, cwd=tmp_path)
        finally:
            for path in read_only:
                path.chmod(0o755 if path.is_dir() else 0o644)
        line = assert_usage_error(done, str(run_dir))
        assert line.startswith("error: Permission denied: "), line
        print(line)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != LOCK_FILE} == {
        p: b for p, b in files.items() if p.name != LOCK_FILE
    }

    again = subprocess.run([str(BIN / "scaling-train"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.startswith("completed: "), again.stderr[-2000:]
    assert summary(run_dir)["resumes"] == 1
    assert_same_as_reference(run_dir, reference)


def test_ctrl_c_in_a_sweep_writes_its_summary_and_a_rerun_finishes_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *TINY, "train.evals=4", "train.tokens=30k,10k", f"hydra.sweep.dir={sweep_dir}"]
    proc = launch(args, tmp_path, start_new_session=True)
    wait_for(lambda: any(rows(p.parent) for p in sweep_dir.glob("*/config.yaml")), proc)
    ctrl_c(proc)
    code, out, err = finish(proc)
    assert code == 128 + signal.SIGINT, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"interrupted at step \d+ \(1 interrupted, 1 pending; summary in {re.escape(str(sweep_dir))}/"
        rf"{SUMMARY_FILE}\); rerun the same command to resume",
        lines[0],
    ), err
    recorded = json.loads((sweep_dir / SUMMARY_FILE).read_text())
    assert recorded["counts"]["interrupted"] == 1 and recorded["counts"]["pending"] == 1, recorded

    again = subprocess.run([str(BIN / "scaling-train"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and "2 completed" in again.stdout, again.stderr[-2000:]
    resumes = sorted(summary(p.parent)["resumes"] for p in sweep_dir.glob("*/summary.json"))
    assert resumes == [0, 1]


# ---- a full disk, a read-only folder ---------------------------------------------------------------
def run_in_tmpfs(size: str, script: str, cwd: Path) -> subprocess.CompletedProcess:
    """`script` (sh) with $FS a fresh tmpfs of `size`, in a private mount namespace: gone when it ends."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a small tmpfs")
    mount = f'FS=$(mktemp -d) && mount -t tmpfs -o size={size} tmpfs "$FS" && {script}'
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", mount],
                          cwd=cwd, capture_output=True, text=True, timeout=300)  # fmt: skip
    if "mount: " in done.stderr and "permission denied" in done.stderr.lower():
        pytest.skip("this machine does not allow mounting a tmpfs")
    return done


def test_a_full_disk_is_one_error_line_naming_the_folder_and_loses_nothing(tmp_path, reference):
    # 300 kB hold the first checkpoint (~120 kB) but not a second one written beside it: the run fills
    # the disk at its second checkpoint. The folder is copied out of the tmpfs before it goes.
    copy = tmp_path / "copy"
    train = " ".join([str(BIN / "scaling-train"), *RUN])
    done = run_in_tmpfs("300k", f'{train} hydra.run.dir="$FS/run"; echo "exit=$?"; cp -a "$FS/run" {copy}',
                        tmp_path)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert "exit=2" in done.stdout, done.stdout + done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: No space left on device: "), done.stderr[-2000:]
    assert re.search(r"/run(/\S*)?; nothing already written was lost", lines[0]), lines[0]
    assert (copy / "ckpt.pt").exists() and 1 <= len(rows(copy)) < 10, (copy / "ckpt.pt").exists()
    print(f"{lines[0]}\nstatus {summary(copy)['status']}: {len(rows(copy))} metric rows and the checkpoint "
          f"({(copy / 'ckpt.pt').stat().st_size:,} bytes) kept")

    again = subprocess.run([str(BIN / "scaling-train"), *RUN, f"hydra.run.dir={copy}"], cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert_same_as_reference(copy, reference)  # resumed from the checkpoint the full disk left


def without_file_access_override(args: list[str]) -> list[str]:
    """As root, permissions bind only without CAP_DAC_OVERRIDE; setpriv drops it for the command."""
    if os.geteuid() != 0:
        return args
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop root's file-access override")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *args]
