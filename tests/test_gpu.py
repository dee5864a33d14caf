"""The GPU path: gradient accumulation, autocast and MFU logging (on the CPU too), and CUDA runs.

Tests marked `gpu` need a CUDA GPU and are skipped, saying so, without one; the others check on the CPU
the pieces the GPU path is made of.
"""

import math
import threading

import pytest
import torch

from scaling.io import read_jsonl
from scaling.shapes import Shape, model_flops_per_token, training_flops_per_token
from scaling.training.config import compose_run_config
from scaling.training.trainer import train

RUN = ["model=tiny_30k", "train.tokens=4e4", "train.batch_size=8", "train.evals=2", "train.eval_tokens=2048",
       "train.threads=1"]
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


pytestmark = pytest.mark.usefixtures("scaling_cache")


def config(*overrides):
    return compose_run_config(overrides)


@pytest.mark.slow
def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    whole = train(config(*RUN, "train.device=cpu"), tmp_path / "whole")
    accumulated = train(config(*RUN, "train.device=cpu", "train.micro_batch_size=2"), tmp_path / "accum")
    assert whole["steps"] == accumulated["steps"]
    assert accumulated["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-4)


def test_mfu_is_logged_against_the_given_peak(tmp_path):
    summary = train(config(*RUN, "train.device=cpu", "train.peak_flops=1e12"), tmp_path)
    row = list(read_jsonl(tmp_path / "metrics.jsonl"))[-1]
    shape = Shape(2, 36, 2, 128, 256)  # tiny_30k
    assert row["flops_per_s"] == pytest.approx(row["tokens_per_s"] * model_flops_per_token(shape))
    assert row["mfu"] == pytest.approx(row["flops_per_s"] / 1e12)
    assert 0 < summary["mfu"] < 1 and summary["flops_per_s"] > 0
    # Model FLOPs per token: training FLOPs (6 N + attention) plus the output head.
    assert model_flops_per_token(shape) == training_flops_per_token(shape) + 6 * 36 * 256


@pytest.mark.slow
def test_bf16_autocast_trains(tmp_path):
    summary = train(config(*RUN, "train.device=cpu", "train.dtype=bf16"), tmp_path)
    assert summary["status"] == "completed" and summary["val_loss"] < math.log(256) - 1


def test_cuda_asked_without_gpu_is_a_usage_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    from scaling.errors import UsageError

    with pytest.raises(UsageError, match="train.device=cuda but torch sees no CUDA GPU"):
        train(config(*RUN, "train.device=cuda"), tmp_path)
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.gpu
@needs_gpu
def test_cuda_run_bf16_compiled_with_mfu(tmp_path):
    summary = train(config("model=tiny_1m", "train.tokens=2e6", "train.device=cuda"), tmp_path)
    assert summary["status"] == "completed" and summary["device"] != "cpu"
    assert summary["val_loss"] < summary["unigram_entropy"] - 0.5
    rows = list(read_jsonl(tmp_path / "metrics.jsonl"))
    if summary["mfu"] is not None:  # known accelerator (A100, H100, H200)
        assert 0 < summary["mfu"] < 1 and all(0 < r["mfu"] < 1 for r in rows)


@pytest.mark.gpu
@needs_gpu
def test_cuda_stop_and_resume_matches_uninterrupted(tmp_path):
    overrides = ["model=tiny_100k", "train.tokens=1e6", "train.device=cuda", "train.compile=false"]
    reference = train(config(*overrides), tmp_path / "ref")

    class StopAfter(threading.Event):
        calls = 5

        def is_set(self):
            self.calls -= 1
            return self.calls < 0

    stopped = train(config(*overrides), tmp_path / "run", stop=StopAfter())
    assert stopped["status"] == "interrupted"
    resumed = train(config(*overrides), tmp_path / "run")
    assert resumed["steps_done"] == reference["steps_done"]
    assert math.isclose(resumed["val_loss"], reference["val_loss"], rel_tol=2e-2)
