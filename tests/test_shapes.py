"""Accounting of GPT shapes, pinned to published counts; torch-free."""

import sys

import pytest

from scaling.errors import UsageError
from scaling.shapes import (
    PRESETS,
    Shape,
    forward_flops_per_token,
    n_params,
    n_params_approx,
    n_params_total,
    shape_for_params,
    training_flops_per_token,
    validate_shape,
)

GPT2_SMALL = Shape(n_layer=12, d_model=768, n_head=12, n_ctx=1024, vocab_size=50257)


def test_gpt2_small_counts():
    assert n_params_total(GPT2_SMALL) == 124_439_808
    assert n_params_total(GPT2_SMALL) - GPT2_SMALL.n_ctx * GPT2_SMALL.d_model == 123_653_376
    assert n_params(GPT2_SMALL) == 85_056_000


def test_gpt3_175b_block_stack():
    shape = PRESETS["gpt3_175b"]
    assert (shape.n_layer, shape.d_model, shape.n_head, shape.d_head) == (96, 12288, 96, 128)
    assert shape.n_ctx == 2048
    assert n_params_approx(shape) == 12 * 96 * 12288**2 == 173_946_175_488
    assert 174e9 < n_params_total(shape) < 176e9


def test_flops_per_token():
    s = Shape(2, 64, 4, n_ctx=128)
    assert forward_flops_per_token(s) == 2 * n_params(s) + 2 * 2 * 128 * 64
    assert training_flops_per_token(s) == 3 * forward_flops_per_token(s)


def test_gpt3_presets_match_table_2_1():
    expected = {  # name: (n_layer, d_model, n_head, published size)
        "gpt3_small": (12, 768, 12, 125e6),
        "gpt3_medium": (24, 1024, 16, 350e6),
        "gpt3_large": (24, 1536, 16, 760e6),
        "gpt3_xl": (24, 2048, 24, 1.3e9),
        "gpt3_2.7b": (32, 2560, 32, 2.7e9),
        "gpt3_6.7b": (32, 4096, 32, 6.7e9),
        "gpt3_13b": (40, 5120, 40, 13e9),
        "gpt3_175b": (96, 12288, 96, 175e9),
    }
    for name, (n_layer, d_model, n_head, size) in expected.items():
        shape = PRESETS[name]
        assert (shape.n_layer, shape.d_model, shape.n_head) == (n_layer, d_model, n_head)
        assert abs(n_params_total(shape) / size - 1) < 0.06, name


def test_shape_for_params_within_ten_percent():
    for target in [1e4, 1.25e8, 1.75e11, *(10 ** (4 + k / 8) for k in range(65))]:
        shape = shape_for_params(target, n_ctx=512)
        assert abs(n_params(shape) / target - 1) <= 0.10, target
        assert shape.d_model % shape.n_head == 0 and shape.d_head % 8 == 0 and shape.n_ctx == 512


def test_shape_for_params_keeps_aspect_and_head_size():
    shape = shape_for_params(1.75e11, aspect=128, head_size=128)
    assert shape.d_head == 128
    assert 100 <= shape.d_model / shape.n_layer <= 160


def test_tiny_presets_are_named_by_their_size():
    for name, shape in PRESETS.items():
        if name.startswith("tiny_"):
            size = float(name[5:].replace("k", "e3").replace("m", "e6"))
            assert abs(n_params(shape) / size - 1) < 0.1, name


def test_validate_shape_names_the_fix():
    with pytest.raises(UsageError, match="not divisible by model.n_head=5.*n_head=4"):
        validate_shape(2, 64, 5)
    with pytest.raises(UsageError, match="positive integer"):
        validate_shape(0, 64, 4)
    assert validate_shape(2, 64, 4, 128, 256) == Shape(2, 64, 4, 128, 256)


def test_shapes_module_is_torch_free():
    import subprocess

    code = "import sys, scaling.shapes; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
