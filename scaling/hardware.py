"""Accelerators and the budget of a training run: FLOPs, PF-days, GPU-days, memory.

Torch-free, so both the training side (MFU in its logs) and the analysis side (`scaling predict`) use the
same peak table. Units: N parameters, D tokens, FLOPs, bytes as decimal GB (1 GB = 1e9 bytes, so GPT-3
175B's fp32 weights come to 175e9 x 4 B = 700 GB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import UsageError
from scaling.reference import training_flops

SECONDS_PER_DAY = 86_400.0
PF_DAY = 1e15 * SECONDS_PER_DAY  # FLOPs in one petaFLOP/s-day (8.64e19)
GB = 1e9  # bytes

# Mixed-precision Adam (Rajbhandari et al. 2020, ZeRO): bf16 weights 2 + bf16 gradients 2 + fp32 master
# weights 4 + fp32 Adam moments 4 + 4 bytes per parameter. Activations and buffers come on top.
TRAINING_BYTES_PER_PARAM = 16
GPU_MEMORY_GB = 80.0  # the common A100/H100 size the "number of GPUs" figure is counted in


@dataclass(frozen=True)
class Accelerator:
    """One accelerator: dense bf16 peak in FLOP/s (no sparsity) and memory in GB."""

    name: str
    peak_bf16_flops: float
    memory_gb: float


# Vendor data sheets, dense bf16 tensor-core peak.
ACCELERATORS: dict[str, Accelerator] = {
    "A100": Accelerator("A100", 312e12, 80.0),
    "H100": Accelerator("H100 SXM", 989e12, 80.0),
    "H200": Accelerator("H200", 989e12, 141.0),
}
DEFAULT_ACCELERATOR = "H100"
DEFAULT_MFU = 0.4  # typical of well-tuned large dense training (PaLM reports 46 %, GPT-3-era ~ 20-40 %)


def get_accelerator(name: str) -> Accelerator:
    """Look up an accelerator by name ('A100', 'h100', 'H100 SXM'); UsageError lists the known ones."""
    key = name.strip().upper().replace("-", " ").split(" ")[0]
    if key not in ACCELERATORS:
        known = ", ".join(ACCELERATORS)
        raise UsageError(f"unknown accelerator {name!r}; known: {known}")
    return ACCELERATORS[key]


def accelerator_for_device(device_name: str) -> Accelerator | None:
    """The accelerator a device name denotes (e.g. torch's 'NVIDIA H100 80GB HBM3'), or None if unknown."""
    upper = device_name.upper()
    for key, accelerator in ACCELERATORS.items():
        if key in upper:
            return accelerator
    return None


def model_flops_utilization(flops_per_s: float, accelerator: Accelerator, n_devices: int = 1) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the dense bf16 peak of `n_devices`."""
    return flops_per_s / (accelerator.peak_bf16_flops * n_devices)


def training_flops_with_attention(
    n_params: float, tokens: float, n_layer: int, n_ctx: int, d_model: int
) -> float:
    """6 N D plus attention scores, 3 x 2 n_layer n_ctx d_model FLOPs per token (Kaplan et al. 2020)."""
    return training_flops(n_params, tokens) + training_flops(n_layer * n_ctx * d_model, tokens)


def pf_days(flops: float) -> float:
    """FLOPs -> petaFLOP/s-days."""
    return flops / PF_DAY


def gpu_days(flops: float, accelerator: Accelerator, mfu: float = DEFAULT_MFU) -> float:
    """Days on one `accelerator` running at model FLOPs utilisation `mfu` (0 < mfu <= 1)."""
    if not 0.0 < mfu <= 1.0:
        raise UsageError(f"MFU must lie in (0, 1], got {mfu}; e.g. 0.4 for 40 %")
    return flops / (accelerator.peak_bf16_flops * mfu * SECONDS_PER_DAY)


@dataclass(frozen=True)
class Memory:
    """Memory of a model in GB (1e9 bytes); activations are not included."""

    weights_fp32: float
    weights_bf16: float
    training_mixed_adam: float
    gpus_80gb: int  # 80 GB GPUs needed just to hold the mixed-precision Adam training state

    def to_json(self) -> dict[str, float | int]:
        return {
            "weights_fp32": self.weights_fp32,
            "weights_bf16": self.weights_bf16,
            "training_mixed_adam": self.training_mixed_adam,
            "gpus_80gb": self.gpus_80gb,
        }


def memory(n_params: float) -> Memory:
    """Weights at 4 and 2 bytes per parameter, training state at 16 bytes per parameter (see above)."""
    state = TRAINING_BYTES_PER_PARAM * n_params / GB
    return Memory(
        weights_fp32=4 * n_params / GB,
        weights_bf16=2 * n_params / GB,
        training_mixed_adam=state,
        gpus_80gb=math.ceil(state / GPU_MEMORY_GB),
    )
