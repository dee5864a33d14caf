"""Training compute, C = 6 N D, and the published models every module measures against.

C = 6 N D FLOPs (Kaplan et al. 2020): each parameter costs 2 FLOPs per token forward and 4 backward; the
attention scores and the output head are left out, as every law in this package leaves them out.
Units: N non-embedding parameters, D tokens, C FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FLOPS_PER_PARAM_TOKEN = 6


def training_flops(N: Any, D: Any) -> Any:
    """C = 6 N D FLOPs of training N parameters on D tokens (numbers, numpy arrays or pandas columns).

    Python ints give an exact int (a run summary's `flops`); anything else a float, since a numpy
    integer product overflows past 9.2e18 without a word.
    """
    if isinstance(N, int) and isinstance(D, int):
        return FLOPS_PER_PARAM_TOKEN * N * D
    return float(FLOPS_PER_PARAM_TOKEN) * N * D


def tokens_for_compute(C: Any, N: Any) -> Any:
    """D = C / (6 N) tokens: the data that C FLOPs train N parameters on."""
    return C / (FLOPS_PER_PARAM_TOKEN * N)


def params_for_compute(C: Any, D: Any) -> Any:
    """N = C / (6 D) parameters: the model that C FLOPs train on D tokens."""
    return C / (FLOPS_PER_PARAM_TOKEN * D)


@dataclass(frozen=True)
class ReferenceModel:
    """A published model to measure against: N parameters (as published) trained on D tokens."""

    name: str
    N: float
    D: float
    preset: str | None = None  # its shape in `scaling.shapes.PRESETS`, where it has one

    @property
    def C(self) -> float:
        """Training compute, 6 N D FLOPs."""
        return training_flops(self.N, self.D)


GPT3_175B = ReferenceModel("GPT-3 175B", N=175e9, D=300e9, preset="gpt3_175b")  # Brown et al. 2020
CHINCHILLA_70B = ReferenceModel("Chinchilla 70B", N=70e9, D=1.4e12)  # Hoffmann et al. 2022
REFERENCE_MODELS = (GPT3_175B, CHINCHILLA_70B)
# The budget Hoffmann et al. state for Gopher and Chinchilla 70B alike (FLOPs); 6 N D of the rounded
# 70B and 1.4T gives 5.9e23.
CHINCHILLA_BUDGET = 5.76e23
# Hoffmann et al. 2022's fit of L = E + A/N^alpha + B/D^beta as published (rounded; loss nats/token)
HOFFMANN_2022 = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# Epoch AI's refit of Chinchilla (Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt"): the
# estimate and its 95 % bootstrap intervals over 4000 resamples; `scaling plan`'s prior when none is given.
EPOCH_PRIOR = {"E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.348, "beta": 0.366}
EPOCH_INTERVALS = {
    "E": (1.769, 1.871),
    "A": (285.0, 744.0),
    "B": (1042.0, 5810.0),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}
