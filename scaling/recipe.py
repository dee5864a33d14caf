"""The trainer's recipe for `auto` hyperparameters and its shortest run: arithmetic on a GPT shape.

Both sides read it: the run config (`scaling.training.config`, which resolves `auto` for `scaling-train`) and
the planner (`scaling.study.planning`, which must propose runs exactly as the trainer will run them). Free of
torch and Hydra, so planning a sweep imports neither.

Rules for `auto` (documented in docs/training.md, section Training):

- learning rate: GPT-3 Table 2.1 for its presets, else the power law through that table,
  lr = 6e-4 (N / 85M)^-0.3 (85M = GPT-3 small's N; it gives 0.6e-4 at 175B, as GPT-3 used), at most 3e-3;
- batch: GPT-3 Table 2.1's tokens per batch for its presets, else 0.5M (N / 85M)^0.25 tokens (3.3M at
  175B; GPT-3 used 3.2M); in both cases at most D / 200 tokens, so that a run takes about 200 optimizer
  steps or more; then rounded to a power of two sequences, at least 8 (tiny batches waste a CPU).
"""

from __future__ import annotations

import math

from scaling.shapes import GPT3_HPARAMS, Shape, gpt3_preset_of

MIN_STEPS = 10  # a run shorter than this has no schedule to speak of
AUTO_MIN_STEPS = 200  # the auto batch keeps about this many optimizer steps or more
AUTO_MIN_BATCH = 8  # sequences
N_REF, LR_REF, BATCH_REF = 85e6, 6e-4, 500_000  # GPT-3 small: N (non-embedding), lr, tokens per batch
LR_MAX = 3e-3


def auto_lr(shape: Shape, n: int) -> float:
    """Peak learning rate for a model of `shape` with N = `n` non-embedding parameters."""
    preset = gpt3_preset_of(shape.n_layer, shape.d_model, shape.n_head)
    if preset:
        return GPT3_HPARAMS[preset][0]
    return min(LR_MAX, LR_REF * (n / N_REF) ** -0.3)


def auto_batch_size(shape: Shape, n: int, tokens: float) -> int:
    """Sequences per optimizer step (over all devices) for `shape`, N = `n` params, trained on `tokens` D."""
    preset = gpt3_preset_of(shape.n_layer, shape.d_model, shape.n_head)
    batch_tokens = GPT3_HPARAMS[preset][1] if preset else BATCH_REF * (n / N_REF) ** 0.25
    sequences = min(batch_tokens, tokens / AUTO_MIN_STEPS) / shape.n_ctx
    return max(AUTO_MIN_BATCH, 2 ** round(math.log2(max(1.0, sequences))))
