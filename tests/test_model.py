"""The GPT model: its counted parameters equal the shapes formulas, and it trains."""

import math

import pytest
import torch

from scaling.shapes import PRESETS, Shape, n_params, n_params_total
from scaling.training.model import GPT, count_params, param_groups


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a shared machine, spinning OpenMP threads of busy cores make tiny steps crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "shape",
    [Shape(2, 64, 4, 128, 256), Shape(3, 48, 3, 32, 100), PRESETS["tiny_1m"], Shape(1, 768, 12, 1024, 50257)],
    ids=str,
)
def test_counted_params_equal_formula(shape):
    with torch.device("meta"):  # counts need no memory or initialisation
        model = GPT(shape)
    assert count_params(model) == (n_params(shape), n_params_total(shape))


def test_gpt2_small_built_model_count():
    with torch.device("meta"):
        model = GPT(Shape(12, 768, 12, 1024, 50257))
    assert count_params(model)[1] == 124_439_808


def test_forward_shapes_and_initial_loss():
    torch.manual_seed(0)
    shape = Shape(2, 32, 2, 16, 256)
    model = GPT(shape)
    idx = torch.randint(0, 256, (3, 16))
    logits, loss = model(idx, torch.randint(0, 256, (3, 16)))
    assert logits.shape == (3, 16, 256)
    assert abs(loss.item() - math.log(256)) < 0.1  # near-uniform at initialisation


def test_attention_is_causal():
    torch.manual_seed(0)
    model = GPT(Shape(2, 32, 2, 16, 64)).eval()
    idx = torch.randint(0, 64, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 64
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_residual_projections_scaled():
    model = GPT(Shape(8, 128, 4, 16, 256))
    std = model.blocks[0].mlp.proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(model.blocks[0].mlp.fc.weight.std().item() - 0.02) < 0.002


def test_weight_decay_on_matrices_only():
    model = GPT(Shape(1, 16, 2, 8, 32))
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() == 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == count_params(model)[1]


def test_memorises_a_batch():
    torch.manual_seed(0)
    model = GPT(Shape(2, 32, 2, 16, 32))
    idx = torch.randint(0, 32, (4, 17))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5
