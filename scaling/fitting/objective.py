"""The objective of every fit: the summed robust loss of log residuals, with exact gradient and Hessian.

Chinchilla's (Hoffmann et al. 2022): the Huber loss (delta = 1e-3) of log(loss) - log(prediction), SUMMED
over runs (averaging makes the optimiser's tolerances 240x looser and is what stopped the original fit
early; Besiroglu et al. 2024). `Problem` with weights (K, n) is K such objectives at once: the bootstrap's
resamples as integer weights on the runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.defaults import HUBER_DELTA
from scaling.fitting.laws import Inputs, Law, weighted_gram, weighted_sum

LOSSES = ("huber", "squared")


def _rho_value(r: np.ndarray, loss: str, delta: float) -> np.ndarray:
    """Loss of residuals r: 0.5 r^2, or Huber's m (|r| - m / 2) with m = min(|r|, delta) (few passes over
    r: a start search evaluates it on every run for hundreds of starts)."""
    if loss == "squared":
        return 0.5 * r * r
    size = np.abs(r)
    m = np.minimum(size, delta)
    return m * (size - 0.5 * m)


def rho(r: np.ndarray, loss: str, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss of residuals r, its first derivative psi and second derivative (0 or 1)."""
    if loss == "squared":
        return _rho_value(r, loss, delta), r, np.ones_like(r)
    return _rho_value(r, loss, delta), np.clip(r, -delta, delta), (np.abs(r) <= delta).astype(float)


@dataclass(frozen=True)
class Problem:
    """Summed loss of log residuals of `law` on runs X with log losses y; `weights` (K, n) makes K
    problems at once (bootstrap resampling counts)."""

    law: Law
    X: Inputs
    y: np.ndarray
    loss: str = "huber"
    delta: float = HUBER_DELTA
    weights: np.ndarray | None = None

    def _w(self, rows):
        if self.weights is None:
            return 1.0
        return self.weights if rows is None else self.weights[rows]

    # Trial points of the optimisers may overflow; the objective is then inf and the point rejected.
    @np.errstate(all="ignore")
    def objective(self, theta: np.ndarray, rows=None) -> np.ndarray:
        r = self.y - self.law.log_predict(theta, self.X)
        value = (self._w(rows) * _rho_value(r, self.loss, self.delta)).sum(-1)
        return np.where(np.isfinite(value), value, np.inf)

    @np.errstate(all="ignore")
    def value_grad(self, theta: np.ndarray, rows=None) -> tuple[np.ndarray, np.ndarray]:
        logp, jac = self.law.jacobian(theta, self.X)
        value, psi, _ = rho(self.y - logp, self.loss, self.delta)
        w = self._w(rows)
        return (w * value).sum(-1), -weighted_sum(w * psi, jac)

    @np.errstate(all="ignore")
    def value_grad_hess(self, theta: np.ndarray, rows=None):
        logp, jac = self.law.jacobian(theta, self.X)
        value, psi, curvature = rho(self.y - logp, self.loss, self.delta)
        w = self._w(rows) * np.ones_like(logp)
        hess = weighted_gram(w * curvature, jac)
        hess += self.law.weighted_hessian(theta, self.X, -w * psi, jac)
        return (w * value).sum(-1), -weighted_sum(w * psi, jac), hess
