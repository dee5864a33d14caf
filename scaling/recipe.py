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

Rules for `law` (docs/hparams.md): the power laws lr_opt = c N^a D^b and B_opt = c' N^g D^h tokens that
`scaling hparams --json` fitted, read from that file by `read_hparam_laws` (a reader of its own, so that
training never imports the analysis side); the batch then takes the same cap and rounding as `auto`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import UsageError
from scaling.io import check_format
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
    return _batch_sequences(batch_tokens, shape, tokens)


def _batch_sequences(batch_tokens: float, shape: Shape, tokens: float) -> int:
    """`batch_tokens` capped at D / AUTO_MIN_STEPS, in sequences rounded to a power of two, at least 8."""
    sequences = min(batch_tokens, tokens / AUTO_MIN_STEPS) / shape.n_ctx
    return max(AUTO_MIN_BATCH, 2 ** round(math.log2(max(1.0, sequences))))


HPARAMS_FORMAT = "scaling.hparams/1"  # written by `scaling hparams --json` (scaling.study.hparams)


@dataclass(frozen=True)
class HparamLawFile:
    """The laws of a `scaling hparams --json` file: (coef, exp_N, exp_D) of lr_opt and of B_opt (tokens)."""

    lr: tuple[float, float, float]
    batch: tuple[float, float, float]

    def law_lr(self, n: float, tokens: float) -> float:
        """Peak learning rate for N = `n` params trained on `tokens` D."""
        c, a, b = self.lr
        return c * n**a * tokens**b

    def law_batch_size(self, shape: Shape, n: float, tokens: float) -> int:
        """Sequences per optimizer step: the law's B_opt tokens, capped and rounded as the `auto` batch."""
        c, g, h = self.batch
        return _batch_sequences(c * n**g * tokens**h, shape, tokens)


def read_hparam_laws(path: str | Path) -> HparamLawFile:
    """The laws of a `scaling hparams --json` file; UsageError when it is unreadable or not one."""
    what = "a hyperparameter-law file (`scaling hparams --json`)"
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read {what}: {exc}") from None
    doc = check_format(doc, HPARAMS_FORMAT, what)
    try:
        laws = [tuple(float(doc[k][f]) for f in ("coef", "exp_N", "exp_D")) for k in ("lr", "batch")]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: not {what}: missing or bad {exc}") from None
    if not all(math.isfinite(v) for law in laws for v in law) or laws[0][0] <= 0 or laws[1][0] <= 0:
        raise UsageError(f"{path}: the laws' coefficients must be positive finite numbers")
    return HparamLawFile(*laws)
