"""SIGKILL during a training run, at random times and inside its writes, then a rerun: nothing lost.

The trainer offers no fault hook, so each attempt runs `scaling.training.trainer.train` in a child process (a
forkserver child with torch already imported: starting one takes milliseconds, not the seconds of a
fresh interpreter) and is killed with SIGKILL:

- at random times across the run (a seeded RNG), which mostly lands inside a training step;
- inside its writes, by a child that wraps the trainer's file writing and kills itself half way through
  a metrics append, after an append but before the checkpoint that follows it, half way through the
  checkpoint's temp file, after the temp file but before its rename, and during summary writes.

After the kills a rerun must end exactly as an uninterrupted run of the same seed (same steps and tokens,
losses bitwise equal on CPU) with every metrics row present once, in order.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tqdm import tqdm

from scaling.io import read_jsonl
from scaling.training.config import compose_run_config

# tiny_10k, 59 optimizer steps of 4 x 128 tokens, an evaluation (and checkpoint) every 5-6 steps.
RUN = ["model=tiny_10k", "train.tokens=30k", "train.batch_size=4", "train.evals=11", "train.eval_tokens=1024",
       "train.threads=1"]  # fmt: skip
RANDOM_KILLS = 12
SAME = ("status", "n_params", "tokens", "steps", "steps_done", "flops", "unique_tokens", "train_loss",
        "val_loss", "epochs")  # fmt: skip


def config():
    return compose_run_config(RUN)


@pytest.fixture(scope="module")
def ctx():
    context = multiprocessing.get_context("forkserver")
    # children start in ~0.1 s
    context.set_forkserver_preload(["scaling.training.trainer", "fault_warmup", __name__])
    return context


def train_child(cfg, run_dir: str, fault: tuple[str, int] | None = None) -> None:
    """The body of one attempt. `fault` = (where, n): SIGKILL this process at the n-th such write."""
    import scaling.training.trainer as trainer

    tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing lock, which a killed child would leak

    if fault is not None:
        where, n = fault
        calls = {"count": 0}

        def due(kind: str) -> bool:
            if kind != where:
                return False
            calls["count"] += 1
            return calls["count"] == n

        def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        real_append, real_atomic_bytes, real_atomic_json = (
            trainer.append_jsonl, trainer.atomic_write_bytes, trainer.atomic_write_json
        )

        def append_jsonl(path, record):
            line = (json.dumps(record) + "\n").encode()
            if due("append torn"):
                with open(path, "ab") as f:
                    f.write(line[: len(line) // 2])
                die()
            real_append(path, record)
            if due("after append"):
                die()  # the row is in metrics.jsonl, the checkpoint of its step is not written yet

        def atomic_write_bytes(path, data):
            if due("checkpoint torn"):
                fd, _ = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
                os.write(fd, data[: len(data) // 2])
                die()
            if due("checkpoint unrenamed"):
                os.replace = lambda *a: die()  # temp file written and fsynced, rename never happens
            real_atomic_bytes(path, data)

        def atomic_write_json(path, obj):
            if due("summary unrenamed"):
                os.replace = lambda *a: die()
            real_atomic_json(path, obj)

        trainer.append_jsonl = append_jsonl
        trainer.atomic_write_bytes = atomic_write_bytes
        trainer.atomic_write_json = atomic_write_json
    trainer.train(cfg, run_dir)


def attempt(ctx, cfg, run_dir: Path, fault=None) -> int:
    """Run one attempt to its end (or its injected SIGKILL); its exit code."""
    proc = ctx.Process(target=train_child, args=(cfg, str(run_dir), fault))
    proc.start()
    proc.join(120)
    assert proc.exitcode is not None, "attempt hung"
    return proc.exitcode


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def metrics(run_dir: Path) -> list[dict]:
    return list(read_jsonl(run_dir / "metrics.jsonl"))


@pytest.fixture(scope="module")
def reference(ctx, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    assert attempt(ctx, config(), run_dir) == 0
    return summary(run_dir), metrics(run_dir)


def assert_same_as_reference(run_dir: Path, reference) -> None:
    ref, ref_rows = reference
    done = summary(run_dir)
    assert {k: done.get(k) for k in SAME} == {k: ref.get(k) for k in SAME}
    rows = metrics(run_dir)
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)), f"duplicated or unordered metrics rows: {steps}"
    assert steps == [r["step"] for r in ref_rows], "metrics rows lost"
    strip = ("elapsed_s", "tokens_per_s", "flops_per_s", "mfu")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in ref_rows
    ]
    assert not (run_dir / "ckpt.pt").exists()


def rows_now(run_dir: Path) -> int:
    try:
        return len(metrics(run_dir))
    except FileNotFoundError:  # unlinked by an attempt that starts afresh
        return 0


@pytest.mark.slow
def test_random_sigkills_then_rerun_match_an_uninterrupted_run(ctx, reference, tmp_path):
    ref, ref_rows = reference
    interval = ref["wall_s"] / len(ref_rows)  # one evaluation (and checkpoint) interval
    cfg = config()
    rng = np.random.default_rng(7)
    kills = []  # (evaluations on disk when killed, seconds after the attempt started)
    for k in range(RANDOM_KILLS):
        # Attempt k is killed at a random time after the k-th evaluation (so the kills spread over the
        # whole run): in start-up, a step, an evaluation or a write, wherever that time falls.
        proc = ctx.Process(target=train_child, args=(cfg, str(tmp_path)))
        proc.start()
        started = time.monotonic()
        while proc.is_alive() and rows_now(tmp_path) < k and time.monotonic() - started < 60:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.8) * interval)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            kills.append((rows_now(tmp_path), round(time.monotonic() - started, 2)))
        proc.join(60)
        assert proc.exitcode in (0, -signal.SIGKILL), proc.exitcode
        if proc.exitcode == -signal.SIGKILL and (tmp_path / "summary.json").exists():
            # "completed" only when the kill landed after the final summary was written, before the exit
            status = summary(tmp_path)["status"]
            finished = status == "completed" and rows_now(tmp_path) == len(ref_rows)
            assert status in ("running", "failed") or finished, status
    assert len(kills) >= 10, kills
    assert attempt(ctx, cfg, tmp_path) == 0
    assert_same_as_reference(tmp_path, reference)
    assert summary(tmp_path)["resumes"] >= 1
    print(f"{len(kills)} SIGKILLs (evaluations on disk, seconds into the attempt): {kills}")


def test_a_checkpoint_left_by_a_kill_after_completion_goes_on_rerun(ctx, reference, tmp_path):
    # a SIGKILL between the final summary and the checkpoint's deletion leaves both; a rerun returns the
    # completed run untouched and removes the stale checkpoint
    cfg = config()
    assert attempt(ctx, cfg, tmp_path) == 0
    (tmp_path / "ckpt.pt").write_bytes(b"left by a killed attempt")
    before = (tmp_path / "summary.json").read_bytes()
    assert attempt(ctx, cfg, tmp_path) == 0
    assert (tmp_path / "summary.json").read_bytes() == before
    assert_same_as_reference(tmp_path, reference)


FAULTS = [
    ("append torn", 3),  # half a metrics line on disk
    ("after append", 5),  # a metrics row past the last checkpoint
    ("checkpoint torn", 2),  # half a checkpoint temp file beside the previous checkpoint
    ("checkpoint unrenamed", 4),  # a complete temp file, never renamed
    ("summary unrenamed", 1),  # the first (running) summary never lands
    ("summary unrenamed", 2),  # the final (completed) summary never lands
    ("after append", 11),  # the final metrics row written, the run not yet marked completed
]


@pytest.mark.slow
def test_sigkill_inside_writes_then_rerun_loses_and_duplicates_nothing(ctx, reference, tmp_path):
    cfg = config()
    for i, fault in enumerate(FAULTS):
        run_dir = tmp_path / f"fault{i}"
        assert attempt(ctx, cfg, run_dir, fault=fault) == -signal.SIGKILL, fault
        if (run_dir / "summary.json").exists():  # written atomically: old or new, never torn
            assert summary(run_dir)["status"] == "running", fault
        assert attempt(ctx, cfg, run_dir) == 0, fault
        assert_same_as_reference(run_dir, reference)
        assert math.isfinite(summary(run_dir)["val_loss"])
