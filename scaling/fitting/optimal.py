"""The compute-optimal allocation as one object: N_opt(C), D_opt(C), tokens per parameter, and D_opt(N).

N_opt(C) = G (C/6)^a parameters for a budget of C FLOPs (Hoffmann et al. 2022), from any of the three
approaches (`scaling.study.allocation`) or from a law's closed form at fitted parameters
(`Law.compute_optimal`, Approach 3; `FitResult.compute_optimal`, and `FitResult.bootstrap_optimal` for
every bootstrap resample at once).

D_opt(C) = C / (6 N_opt(C)) tokens in every approach, so that the budget holds exactly:
C = 6 N_opt D_opt. That is the power law D_opt = (1/G) (C/6)^(1 - a). `b` is the exponent of D_opt as
reported: Approach 3's closed form gives b = 1 - a exactly; Approaches 1 and 2 fit b through their points
separately from a, but every point they fit has C = 6 N D, so least squares gives b = 1 - a (and a
coefficient 1/G) to rounding. Were a fitted b to differ from 1 - a, D_opt would still follow N_opt and
the budget, never a second power law that spends another budget.

Units: N non-embedding parameters, D tokens, C FLOPs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from scaling.reference import FLOPS_PER_PARAM_TOKEN, tokens_for_compute


@dataclass(frozen=True)
class ComputeOptimal:
    """N_opt(C) = G (C/6)^a params and D_opt(C) = C / (6 N_opt(C)) tokens for a budget of C FLOPs.

    a, G: the power law of N_opt (numbers, or arrays of bootstrap samples shaped to broadcast against C);
    b: the exponent of D_opt as reported (1 - a; see the module docstring).
    """

    a: float | np.ndarray
    b: float | np.ndarray
    G: float | np.ndarray

    def N_opt(self, C: ArrayLike) -> float | np.ndarray:
        """Compute-optimal parameters for C FLOPs."""
        return self.G * (np.asarray(C, dtype=float) / FLOPS_PER_PARAM_TOKEN) ** self.a

    def D_opt(self, C: ArrayLike) -> float | np.ndarray:
        """Compute-optimal tokens for C FLOPs: the data that C FLOPs train N_opt(C) on."""
        C = np.asarray(C, dtype=float)
        return tokens_for_compute(C, self.N_opt(C))

    def tokens_per_param(self, C: ArrayLike) -> float | np.ndarray:
        """D_opt / N_opt at C FLOPs."""
        return self.D_opt(C) / self.N_opt(C)

    def D_opt_for_params(self, N: ArrayLike) -> float | np.ndarray:
        """D_opt(N) in tokens: the data that makes N the compute-optimal size, inverting N_opt(C)."""
        N = np.asarray(N, dtype=float)
        # A bootstrap resample with a tiny exponent a puts D_opt beyond any float: inf is the honest answer.
        with np.errstate(over="ignore"):
            c_over_6 = (N / self.G) ** (1.0 / self.a)
        return c_over_6 / N

    def resamples(self) -> Iterator[ComputeOptimal]:
        """Each bootstrap sample's split, when a, b and G are (K,) arrays of samples."""
        for a, b, G in zip(self.a, self.b, self.G, strict=True):
            yield ComputeOptimal(a, b, G)

    def to_json(self) -> dict[str, float]:
        return {"a": float(self.a), "b": float(self.b), "G": float(self.G)}
