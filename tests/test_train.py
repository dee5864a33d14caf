"""One training run end to end: config validation, the run folder, resume after SIGKILL, stop, DDP."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers import BIN, REPO, assert_usage_error, run_process
from omegaconf import OmegaConf

from scaling.errors import UsageError
from scaling.io import read_jsonl
from scaling.shapes import PRESETS, n_params
from scaling.training.config import compose_run_config, plan_run
from scaling.training.trainer import RunState, Runtime, build, train, train_step

# A tiny run that takes a few seconds on one thread; one thread keeps it deterministic and quick on a
# shared machine.
RUN = ["model=tiny_30k", "train.tokens=2e5", "train.batch_size=16", "train.evals=8", "train.eval_tokens=4096",
       "train.threads=1"]
CONTRACT = {"status", "n_params", "n_params_total", "n_layer", "d_model", "n_head", "n_ctx", "tokens",
            "unique_tokens", "flops", "train_loss", "val_loss", "seed", "wall_s"}
METRIC_KEYS = {"step", "tokens", "flops", "lr", "train_loss", "val_loss", "elapsed_s", "tokens_per_s"}


pytestmark = pytest.mark.usefixtures("scaling_cache")


def config(*overrides):
    return compose_run_config(overrides)


def rows(run_dir):
    return list(read_jsonl(Path(run_dir) / "metrics.jsonl"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, trained in this process."""
    run_dir = tmp_path_factory.mktemp("reference")
    start = time.perf_counter()
    summary = train(config(*RUN), run_dir)
    return run_dir, summary, time.perf_counter() - start


def scaling_train(*args, cwd, **kw):
    return subprocess.Popen([str(BIN / "scaling-train"), *args], cwd=cwd, text=True, **kw)


def test_run_folder_contract_and_learning(reference):
    run_dir, summary, seconds = reference
    assert seconds < 60
    assert summary["status"] == "completed"
    assert set(summary) >= CONTRACT
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert summary["n_params"] == n_params(PRESETS["tiny_30k"])
    assert summary["flops"] == 6 * summary["n_params"] * summary["tokens"]
    assert summary["tokens"] == summary["steps"] * 16 * 128
    # It really learned: below the loss of the best unigram model of the corpus.
    assert summary["val_loss"] < summary["unigram_entropy"] - 0.3
    metrics = rows(run_dir)
    assert len(metrics) == 8 and all(set(r) >= METRIC_KEYS for r in metrics)
    assert metrics[-1]["val_loss"] == summary["val_loss"] and metrics[-1]["step"] == summary["steps"]
    assert [r["tokens"] for r in metrics] == sorted(r["tokens"] for r in metrics)
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.train.batch_size == 16 and saved.model.n_layer == 2 and saved.model.vocab_size == 256
    assert not (run_dir / "ckpt.pt").exists()


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_same_result(reference, tmp_path):
    ref_dir, ref, _ = reference
    run_dir = tmp_path / "run"
    args = [*RUN, f"hydra.run.dir={run_dir}"]
    proc = scaling_train(*args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists() and len(rows(run_dir)) >= 3 and (run_dir / "ckpt.pt").exists():
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    done = subprocess.run([str(BIN / "scaling-train"), *args], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "completed: val_loss" in done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumes"] == 1
    for key in ("tokens", "steps", "flops", "val_loss", "train_loss"):
        assert summary[key] == ref[key], key  # bitwise on CPU
    metrics, ref_metrics = rows(run_dir), rows(ref_dir)
    assert [r["step"] for r in metrics] == [r["step"] for r in ref_metrics]  # none duplicated or lost
    assert [(r["train_loss"], r["val_loss"]) for r in metrics] == [
        (r["train_loss"], r["val_loss"]) for r in ref_metrics
    ]
    # A finished run is not trained again.
    before = (run_dir / "summary.json").stat().st_mtime_ns
    assert train(config(*RUN), run_dir) == summary
    assert (run_dir / "summary.json").stat().st_mtime_ns == before


class StopAfter(threading.Event):
    """A stop request that arrives after `calls` checks (as a signal handler would, mid-run)."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def is_set(self):
        self.calls -= 1
        return self.calls < 0


def test_stop_event_checkpoints_and_resumes(reference, tmp_path):
    _, ref, _ = reference
    cfg = config(*RUN)
    stopped = train(cfg, tmp_path, stop=StopAfter(40))
    assert stopped["status"] == "interrupted" and stopped["steps_done"] == 41
    assert (tmp_path / "ckpt.pt").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "interrupted"
    finished = train(cfg, tmp_path)
    assert finished["status"] == "completed"
    assert (finished["val_loss"], finished["steps_done"]) == (ref["val_loss"], ref["steps"])


def test_divergence_is_recorded(tmp_path):
    summary = train(config(*RUN, "train.lr=1e4", "train.grad_clip=1e9"), tmp_path)
    assert summary["status"] == "diverged" and summary["val_loss"] is None
    assert summary["diverged_at_step"] <= summary["steps"]
    assert rows(tmp_path)[-1]["train_loss"] is None
    assert train(config(*RUN, "train.lr=1e4", "train.grad_clip=1e9"), tmp_path) == summary  # not retried


def test_other_config_in_same_folder_is_refused(reference):
    run_dir, _, _ = reference
    with pytest.raises(UsageError, match="holds a run with another config"):
        train(config(*RUN, "train.seed=1"), run_dir)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.n_head=5"], "d_model=36 is not divisible by model.n_head=5"),
        (["train.tokens=500"], "smaller than one batch"),
        (["train.tokens=5000"], "only 2 optimizer steps"),
        (["train.tokens=null"], "give the token budget"),
        (["data.name=/no/such/corpus"], "data folder /no/such/corpus does not exist"),
        (["data.unique_tokens=1e9"], "exceeds the"),
        (["train.tokens=lots"], "train.tokens 'lots' is not a number"),
    ],
)
def test_bad_config_is_one_error_line_before_training(tmp_path, overrides, message):
    run_dir = tmp_path / "run"
    done = run_process([BIN / "scaling-train", *RUN, *overrides, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert_usage_error(done, message)
    assert not (run_dir / "summary.json").exists() and not (run_dir / "metrics.jsonl").exists()


def test_corrupt_token_file_is_refused(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("all the world's a stage, and all the men and women merely players. " * 400)
    prepared = tmp_path / "data"
    subprocess.run([str(BIN / "scaling"), "prepare", str(text), "--out", str(prepared)], check=True,
                   capture_output=True)
    with open(prepared / "train.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff")
    with pytest.raises(UsageError, match="does not match its hash"):
        plan_run(config(*RUN, f"data.name={prepared}"))


def test_schedule_warmup_and_cosine_floor():
    plan = plan_run(config(*RUN, "train.warmup_frac=0.1", "train.lr=1e-3"))
    lrs = [plan.lr_at(s) for s in range(plan.steps)]
    assert plan.warmup_steps == round(0.1 * plan.steps)
    assert lrs[0] == pytest.approx(1e-3 / plan.warmup_steps) and max(lrs) == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4)  # 10 % of the peak at exactly the last step
    assert all(a >= b for a, b in zip(lrs[plan.warmup_steps :], lrs[plan.warmup_steps + 1 :], strict=False))


def test_auto_hyperparameters_and_resolvers():
    gpt3 = plan_run(config("model=gpt3_small", "train.tokens=3e9"))
    assert gpt3.lr == 6e-4 and gpt3.batch_size * 2048 == pytest.approx(5e5, rel=0.05)
    tiny = plan_run(config("model=tiny_100k", "train.tokens_per_param=20"))
    assert tiny.tokens == pytest.approx(20 * n_params(PRESETS["tiny_100k"]), rel=0.01)
    assert 1e-3 <= tiny.lr <= 3e-3 and tiny.steps >= 100
    target = plan_run(config("model=target", "model.target_params=2e5", "train.tokens=1e6"))
    assert abs(target.n_params / 2e5 - 1) <= 0.1
    cfg = OmegaConf.create(
        {
            "model": {"n_layer": 2, "d_model": 64},
            "D": "${tokens_for_compute:1e12,${model.n_layer},${model.d_model}}",
            "N": "${n_params:${model.n_layer},${model.d_model}}",
        }
    )
    assert cfg.N == 100_096 and round(1e12 / (6 * 100_096)) == cfg.D


def test_model_configs_match_presets():
    for name, shape in PRESETS.items():
        model = OmegaConf.load(REPO / "sweeps" / "model" / f"{name}.yaml")
        assert (model.n_layer, model.d_model, model.n_head, model.n_ctx) == (
            shape.n_layer, shape.d_model, shape.n_head, shape.n_ctx), name


@pytest.mark.slow
def test_ddp_two_processes_match_one(reference, tmp_path):
    """torchrun with 2 CPU processes (gloo) and the same global batch gives the single-process losses."""
    _, ref, _ = reference
    run_dir = tmp_path / "ddp"
    done = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc-per-node=2", "--no-python",
         str(BIN / "scaling-train"), *RUN, "train.threads=null", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    assert summary["steps"] == ref["steps"] and summary["tokens"] == ref["tokens"]
    assert summary["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-4)
    assert len(rows(run_dir)) == len(rows(reference[0]))


def test_run_state_saves_and_restores_itself(tmp_path):
    """A checkpoint brings back the weights, AdamW's moments, the CPU RNG and the counters."""
    plan = plan_run(config(*RUN))
    rt = Runtime(torch.device("cpu"), torch.float32, False, 0, 1, 0, None)
    path = tmp_path / "ckpt.pt"
    torch.manual_seed(0)
    state = RunState.restore(path, *build(plan.shape, rt, 1e-3, 0.1, (0.9, 0.95)), rt.device)
    assert (state.step, state.resumes, state.loss_count, state.loss_sum.item()) == (0, 0, 0, 0.0)
    tokens = torch.randint(0, plan.shape.vocab_size, (4, plan.shape.n_ctx + 1))
    batch = [(tokens[:, :-1], tokens[:, 1:])]
    state.loss_sum += train_step(state.model, state.model, state.optimizer, batch, 1, 1e-3, 1.0, rt)
    state.step, state.loss_count, state.wall_s, state.train_s = 1, 1, 5.0, 4.0
    state.save(path)
    draw = torch.rand(3)  # what the RNG gives next, after the save

    torch.manual_seed(1)  # another initialisation, to be overwritten
    restored = RunState.restore(path, *build(plan.shape, rt, 1e-3, 0.1, (0.9, 0.95)), rt.device)
    assert torch.equal(torch.rand(3), draw)
    assert (restored.step, restored.loss_count, restored.resumes) == (1, 1, 1)
    assert restored.loss_sum.item() == state.loss_sum.item() > 0
    assert restored.wall_s >= 5.0 and restored.train_s >= 4.0  # seconds, this session's added on saving
    for name, value in state.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], value), name
    saved, loaded = state.optimizer.state_dict()["state"], restored.optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys() and all(
        torch.equal(saved[k]["exp_avg_sq"], loaded[k]["exp_avg_sq"]) for k in saved
    )
