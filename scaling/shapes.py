"""GPT shapes and their exact accounting: parameters N, FLOPs per token, GPT-3 presets, target N -> shape.

Torch-free, so analysis code can count GPT-3 175B without building it.

The counts are those of `scaling.training.model.GPT` (GPT-2/GPT-3 layout, biases everywhere, tied output
head):

- one block: attention 4 d^2 + 4 d (qkv and output projections with biases), MLP 8 d^2 + 5 d
  (d -> 4d -> d with biases), two LayerNorms 4 d: 12 d^2 + 13 d parameters;
- N (non-embedding) = n_layer (12 d^2 + 13 d) + 2 d (the final LayerNorm);
- N_total = N + vocab_size d (token embedding, shared with the output head) + n_ctx d (positions).

Kaplan et al. (2020) write N ~ 12 n_layer d^2 (`n_params_approx`), the weight matrices of the block stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import UsageError
from scaling.reference import training_flops

HEAD_MULTIPLE = 8  # head widths chosen by shape_for_params are multiples of this


@dataclass(frozen=True)
class Shape:
    """The shape of a GPT: layers, width, heads, context length (tokens) and vocabulary size (tokens)."""

    n_layer: int
    d_model: int
    n_head: int
    n_ctx: int = 1024
    vocab_size: int = 256

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head


def n_params(shape: Shape) -> int:
    """N: non-embedding parameters (weights, biases, LayerNorms of the blocks and the final LayerNorm)."""
    d = shape.d_model
    return shape.n_layer * (12 * d * d + 13 * d) + 2 * d


def n_params_approx(shape: Shape) -> int:
    """Kaplan's N ~ 12 n_layer d_model^2: the weight matrices of the block stack, no biases or norms."""
    return 12 * shape.n_layer * shape.d_model**2


def n_params_total(shape: Shape) -> int:
    """All parameters: N plus token embeddings (tied with the output head) and position embeddings."""
    return n_params(shape) + (shape.vocab_size + shape.n_ctx) * shape.d_model


def forward_flops_per_token(shape: Shape) -> int:
    """Forward FLOPs per token, 2 N + 2 n_layer n_ctx d_model (Kaplan et al. 2020, Table 1)."""
    return 2 * n_params(shape) + 2 * shape.n_layer * shape.n_ctx * shape.d_model


def training_flops_per_token(shape: Shape) -> int:
    """Training FLOPs per token: forward plus backward (twice the forward), 3 x forward ~ 6 N."""
    return 3 * forward_flops_per_token(shape)


def model_flops_per_token(shape: Shape) -> int:
    """FLOPs per trained token that MFU counts: training FLOPs plus the output head's logits.

    The head (d_model x vocab_size, 6 d_model vocab_size per token in training) is real matrix work that
    N leaves out; for GPT-3's 50257-token vocabulary it is a third of GPT-3 small's compute.
    """
    return training_flops_per_token(shape) + training_flops(shape.d_model * shape.vocab_size, 1)


def validate_shape(
    n_layer: int, d_model: int, n_head: int, n_ctx: int = 1024, vocab_size: int = 256
) -> Shape:
    """Return the Shape, or raise UsageError naming the bad value and a fix."""
    for name, value in (
        ("n_layer", n_layer),
        ("d_model", d_model),
        ("n_head", n_head),
        ("n_ctx", n_ctx),
        ("vocab_size", vocab_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"model.{name} must be a positive integer, got {value!r}")
    if d_model % n_head:
        divisors = [h for h in range(1, d_model + 1) if d_model % h == 0 and abs(h - n_head) <= n_head]
        near = min(divisors, key=lambda h: abs(h - n_head))
        raise UsageError(
            f"model.d_model={d_model} is not divisible by model.n_head={n_head}; "
            f"use e.g. model.n_head={near} or model.d_model={(d_model // n_head + 1) * n_head}"
        )
    if vocab_size > 65536:
        raise UsageError(f"model.vocab_size={vocab_size} exceeds 65536, the range of the uint16 token files")
    return Shape(n_layer, d_model, n_head, n_ctx, vocab_size)


def shape_for_params(
    target_n: float,
    aspect: float = 64.0,
    head_size: int = 64,
    n_ctx: int = 1024,
    vocab_size: int = 256,
) -> Shape:
    """The shape whose N lands within 10 % of `target_n` with d_model / n_layer nearest to `aspect`.

    Heads are about `head_size` wide (GPT-3: 64 up to 13B, 128 for 175B), narrower models get fewer,
    at least one; head widths are multiples of 8, as GPU attention and matrix kernels want.

    Parameters
    ----------
    target_n : float
        Wanted non-embedding parameters N (at least 10k).
    aspect : float
        Wanted d_model / n_layer (GPT-3 small: 64, GPT-3 175B: 128).
    """
    if not math.isfinite(target_n) or target_n < 1e4:
        raise UsageError(f"target parameter count must be at least 1e4 (10k), got {target_n!r}")
    if aspect <= 0 or head_size < 1:
        raise UsageError(f"aspect and head_size must be positive, got aspect={aspect}, head_size={head_size}")
    best: tuple[float, float, Shape] | None = None
    for n_layer in range(1, 513):
        width = math.sqrt(target_n / (12 * n_layer))
        n_head = max(1, round(width / head_size))
        per_head = width / n_head / HEAD_MULTIPLE
        for units in {max(1, math.floor(per_head)), max(1, math.ceil(per_head))}:
            d_head = HEAD_MULTIPLE * units
            shape = Shape(n_layer, n_head * d_head, n_head, n_ctx, vocab_size)
            miss = abs(n_params(shape) / target_n - 1)
            # Within 10 % every candidate is acceptable: prefer the aspect, then the closer N.
            key = (abs(math.log(shape.d_model / n_layer / aspect)) if miss <= 0.1 else math.inf, miss)
            if best is None or key < best[:2]:
                best = (*key, shape)
    assert best is not None
    if best[1] > 0.1:
        raise UsageError(f"no GPT shape has N within 10 % of {target_n:.4g} parameters; pick another target")
    return best[2]


# GPT-3 Table 2.1 (Brown et al. 2020): n_ctx 2048, GPT-2's 50257-token BPE vocabulary.
GPT3_CONTEXT_AND_VOCAB = {"n_ctx": 2048, "vocab_size": 50257}
PRESETS: dict[str, Shape] = {
    "gpt3_small": Shape(12, 768, 12, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_medium": Shape(24, 1024, 16, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_large": Shape(24, 1536, 16, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_xl": Shape(24, 2048, 24, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_2.7b": Shape(32, 2560, 32, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_6.7b": Shape(32, 4096, 32, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_13b": Shape(40, 5120, 40, **GPT3_CONTEXT_AND_VOCAB),
    "gpt3_175b": Shape(96, 12288, 96, **GPT3_CONTEXT_AND_VOCAB),
    # Tiny shapes for CPU work, named by N; byte-level vocabulary, 128-token context.
    "tiny_10k": Shape(2, 20, 2, 128, 256),
    "tiny_30k": Shape(2, 36, 2, 128, 256),
    "tiny_100k": Shape(2, 64, 4, 128, 256),
    "tiny_300k": Shape(4, 80, 4, 128, 256),
    "tiny_1m": Shape(5, 128, 4, 128, 256),
    "tiny_3m": Shape(6, 208, 4, 128, 256),
    "tiny_5m": Shape(8, 224, 4, 128, 256),
}

# GPT-3 Table 2.1 training hyperparameters: peak learning rate and batch size in tokens.
GPT3_HPARAMS: dict[str, tuple[float, int]] = {
    "gpt3_small": (6.0e-4, 500_000),
    "gpt3_medium": (3.0e-4, 500_000),
    "gpt3_large": (2.5e-4, 500_000),
    "gpt3_xl": (2.0e-4, 1_000_000),
    "gpt3_2.7b": (1.6e-4, 1_000_000),
    "gpt3_6.7b": (1.2e-4, 2_000_000),
    "gpt3_13b": (1.0e-4, 2_000_000),
    "gpt3_175b": (0.6e-4, 3_200_000),
}


def gpt3_preset_of(n_layer: int, d_model: int, n_head: int) -> str | None:
    """The GPT-3 preset with this block stack, if any (context and vocabulary may differ)."""
    for name in GPT3_HPARAMS:
        p = PRESETS[name]
        if (p.n_layer, p.d_model, p.n_head) == (n_layer, d_model, n_head):
            return name
    return None
