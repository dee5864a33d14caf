"""Token data: the built-in corpus, `scaling prepare`, the synthetic source, the window order."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error, run_process

from scaling.errors import UsageError
from scaling.training.data import (
    MarkovSource,
    WindowSampler,
    builtin_corpus,
    eval_starts,
    load_data,
    load_prepared,
    split_tokens,
    synthetic,
)

SCALING = [str(Path(sys.executable).parent / "scaling")]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("SCALING_CACHE", str(folder))
    return folder


def test_builtin_corpus(cache):
    data = builtin_corpus()
    meta = data.meta
    assert data.folder.parent == cache
    assert meta["vocab_size"] == 256 and meta["tokenizer"] == "bytes"
    assert meta["n_tokens"] == 5_057_198 == meta["n_train"] + meta["n_val"]
    assert 0.09 < meta["n_val"] / meta["n_tokens"] < 0.11
    assert len(data.train) == meta["n_train"] and data.train.dtype == np.uint16
    assert 3.0 < data.unigram_entropy < math.log(256)
    assert bytes(np.asarray(data.train[:20]).astype(np.uint8)).isascii()
    assert load_data("default").meta == meta  # second load reuses the cache


def test_split_is_deterministic_and_spread():
    tokens = np.arange(60_000, dtype=np.uint16)
    train, val = split_tokens(tokens)
    assert len(train) + len(val) == len(tokens)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert val.min() < 10_000 and val.max() > 50_000  # held-out text from all over the corpus
    again_train, _ = split_tokens(tokens)
    assert np.array_equal(train, again_train)


def test_prepare_cli_and_corrupt_file(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("to be or not to be, that is the question. " * 200)
    out = tmp_path / "prepared"
    done = subprocess.run([*SCALING, "prepare", str(text), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "8,400 tokens" in done.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_tokens"] == 8400 and meta["vocab_size"] == 256
    data = load_prepared(out)
    assert data.unigram_entropy == pytest.approx(meta["unigram_entropy"])

    good = (out / "train.bin").read_bytes()
    raw = bytearray(good)
    raw[10] ^= 0xFF
    (out / "train.bin").write_bytes(bytes(raw))
    with pytest.raises(UsageError, match=r"train.bin does not match its hash.*scaling prepare"):
        load_prepared(out)
    (out / "train.bin").write_bytes(good)
    (out / "val.bin").write_bytes(b"\0")
    with pytest.raises(UsageError, match="not 840 tokens long"):
        load_prepared(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "no-such-file.txt", "--out", "OUT"], "cannot read text file no-such-file.txt"),
        (["prepare", "EMPTY", "--out", "OUT"], "only 0 tokens"),
    ],
)
def test_prepare_bad_input(tmp_path, args, message):
    (tmp_path / "EMPTY").write_bytes(b"")
    assert_usage_error(run_process([*SCALING, *args], cwd=tmp_path), message)


def test_missing_folder_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist; prepare it with `scaling prepare"):
        load_data(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a prepared data folder"):
        load_data(str(tmp_path / "empty"))


def test_uniform_source_entropy_is_log_v():
    uniform = MarkovSource(vocab_size=8, order=1, successors=2, noise=1.0)
    assert uniform.entropy_rate() == pytest.approx(math.log(8))


def test_synthetic_entropy_rate_matches_its_samples():
    data = synthetic(tokens=400_000, vocab_size=16, order=2, successors=3, noise=0.05, seed=1)
    H = data.entropy_rate
    assert data.vocab_size == 16 and 0.5 < H < math.log(16)
    assert data.unigram_entropy > H
    tokens = np.asarray(data.train).astype(np.int64)
    ctx, nxt = tokens[:-2] * 16 + tokens[1:-1], tokens[2:]
    counts = np.bincount(ctx * 16 + nxt, minlength=16**3).reshape(256, 16).astype(float)
    p = counts / counts.sum(1, keepdims=True)
    plug_in = -(counts * np.log(np.where(p > 0, p, 1))).sum() / counts.sum()
    assert abs(plug_in - H) < 0.01  # plug-in bias ~ 256 * 15 / (2 * 360k) = 0.005 nats
    again = synthetic(tokens=400_000, vocab_size=16, order=2, successors=3, noise=0.05, seed=1)
    assert again.meta == data.meta


def test_concurrent_cache_builds_agree(tmp_path):
    code = (
        "from scaling.training.data import synthetic;"
        "d = synthetic(tokens=300_000, vocab_size=12, order=2, seed=7); print(d.meta['train_sha256'])"
    )
    env = {**os.environ, "SCALING_CACHE": str(tmp_path / "shared")}
    command = [sys.executable, "-c", code]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in "ab"]
    outs = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] and len(outs[0]) == 64
    assert load_prepared(next((tmp_path / "shared").iterdir())).meta["train_sha256"] == outs[0]


def test_window_order_resumes_and_covers_each_epoch():
    tokens = np.arange(10_000, dtype=np.uint16)
    sampler = WindowSampler(tokens, n_ctx=16, seed=3)
    M = sampler.windows_per_epoch
    assert M == 10_000 // 16 - 1
    whole = sampler.starts(0, 2 * M + 5)
    pieces = np.concatenate([WindowSampler(tokens, 16, 3).starts(i, 7) for i in range(0, 2 * M + 5, 7)])
    assert np.array_equal(whole, pieces[: len(whole)])
    first_epoch = whole[:M]
    assert len(set((first_epoch - first_epoch.min()) // 16)) == M  # every window once
    assert (whole + 17 <= len(tokens)).all()
    batch = sampler.batch(0, 4)
    assert batch.shape == (4, 17) and np.array_equal(batch[:, 1:] - batch[:, :-1], np.ones((4, 16)))
    assert not np.array_equal(WindowSampler(tokens, 16, 4).starts(0, 50), whole[:50])


def test_eval_windows_fit_and_are_fixed():
    tokens = np.zeros(1000, dtype=np.uint16)
    starts = eval_starts(tokens, n_ctx=64, max_tokens=640)
    assert len(starts) == 10 and starts.max() + 65 <= 1000
    with pytest.raises(UsageError, match="less than one window"):
        eval_starts(tokens[:50], n_ctx=64, max_tokens=640)
