"""The objective of every fit: the summed robust loss of log residuals, with exact gradient and Hessian.

Chinchilla's (Hoffmann et al. 2022): the Huber loss (delta = 1e-3) of log(loss) - log(prediction), SUMMED
over runs (averaging makes the optimiser's tolerances 240x looser and is what stopped the original fit
early; Besiroglu et al. 2024). `Problem` with weights (K, n) is K such objectives at once: the bootstrap's
resamples as integer weights on the runs.

A saturating law fitted to four sizes or fewer (`Saturating.min_distinct` + 1: one degree of freedom
across sizes) gets a weak prior on its floor E (`EPrior`, `e_prior`): the runs do not determine E, and
the fit that passes closest to them can put it far below the loss any family levels off at.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from scaling.defaults import HUBER_DELTA
from scaling.fitting.laws import Inputs, Law, Saturating, weighted_gram, weighted_sum

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


# The prior on a saturating law's floor E on four sizes or fewer: log(E / smallest loss of the runs) ~
# Normal(log E_PRIOR_RATIO, E_PRIOR_SPREAD). Why these: the geometric mean and the standard deviation of
# log(E / smallest loss) of the design's saturating law fitted to each of the 24 one-axis families of
# bench/one_axis.py (OLMo, Gadre et al., Porian et al., Chinchilla, synthetic; 0.17-0.98 of the smallest
# loss). E_PRIOR_WEIGHT scales the penalty E_PRIOR_WEIGHT z^2 / 2 in the objective's units: a floor one
# spread off costs about what one run missed by 0.5 % costs under the Huber loss at delta 1e-3. Each was
# chosen by leave-one-source-out over those five sources (bench/small_family_prior.py: 1e-5 in three folds
# of five, 3e-5 in two), and the prior's mean and spread barely move when a source is left out (0.52-0.71).
E_PRIOR_RATIO = 0.62
E_PRIOR_SPREAD = 0.46
E_PRIOR_WEIGHT = 1e-5


@dataclass(frozen=True)
class EPrior:
    """A normal prior on log E (parameter `index` of theta): mean `mean`, standard deviation `spread`,
    added to the objective as weight z^2 / 2."""

    index: int
    mean: float
    spread: float
    weight: float

    def describe(self) -> str:
        return (
            f"E held near {E_PRIOR_RATIO:g}x the smallest loss by a prior (x/ {np.exp(self.spread):.2f}; "
            "four sizes or fewer do not determine it)"
        )


def e_prior(law: Law, X: Inputs, y: np.ndarray) -> EPrior | None:
    """The prior on E of a saturating `law` fitted to runs X with log losses y on at most
    `min_distinct` + 1 distinct values of its variable; None for any other fit."""
    if not isinstance(law, Saturating) or np.unique(X.require(law.variable)).size > law.min_distinct + 1:
        return None
    index = law.param_names.index("E")
    return EPrior(index, float(np.min(y) + np.log(E_PRIOR_RATIO)), E_PRIOR_SPREAD, E_PRIOR_WEIGHT)


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

    @cached_property
    def prior(self) -> EPrior | None:
        """The prior of this law on these runs (`e_prior`), the same under every weighting of the runs."""
        return e_prior(self.law, self.X, self.y)

    def _penalty(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The prior's value (theta's leading shape), gradient (theta's shape) and curvature."""
        prior = self.prior
        if prior is None:
            return 0.0, 0.0, 0.0
        z = (theta[..., prior.index] - prior.mean) / prior.spread
        grad = np.zeros_like(theta)
        grad[..., prior.index] = prior.weight * z / prior.spread
        return 0.5 * prior.weight * z * z, grad, prior.weight / prior.spread**2

    def _w(self, rows):
        if self.weights is None:
            return 1.0
        return self.weights if rows is None else self.weights[rows]

    # Trial points of the optimisers may overflow; the objective is then inf and the point rejected.
    @np.errstate(all="ignore")
    def objective(self, theta: np.ndarray, rows=None) -> np.ndarray:
        r = self.y - self.law.log_predict(theta, self.X)
        value = (self._w(rows) * _rho_value(r, self.loss, self.delta)).sum(-1) + self._penalty(theta)[0]
        return np.where(np.isfinite(value), value, np.inf)

    @np.errstate(all="ignore")
    def value_grad(self, theta: np.ndarray, rows=None) -> tuple[np.ndarray, np.ndarray]:
        logp, jac = self.law.jacobian(theta, self.X)
        value, psi, _ = rho(self.y - logp, self.loss, self.delta)
        w = self._w(rows)
        penalty, grad, _ = self._penalty(np.asarray(theta, float))
        return (w * value).sum(-1) + penalty, -weighted_sum(w * psi, jac) + grad

    @np.errstate(all="ignore")
    def value_grad_hess(self, theta: np.ndarray, rows=None):
        logp, jac = self.law.jacobian(theta, self.X)
        value, psi, curvature = rho(self.y - logp, self.loss, self.delta)
        w = self._w(rows) * np.ones_like(logp)
        hess = weighted_gram(w * curvature, jac)
        hess += self.law.weighted_hessian(theta, self.X, -w * psi, jac)
        penalty, grad, curvature = self._penalty(np.asarray(theta, float))
        if self.prior is not None:
            hess[..., self.prior.index, self.prior.index] += curvature
        return (w * value).sum(-1) + penalty, -weighted_sum(w * psi, jac) + grad, hess
