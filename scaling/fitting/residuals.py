"""Whether a fit's residuals are noise or structure: a table that holds two families of runs (two corpora,
tokenizers or setups) is not one law, however well one law's optimum is certified.

`mixture_ratio` splits the runs in two so that each group is fitted best by its own smooth surface in
(log N, log D) (alternating: fit each group's surface, move each run to the surface nearer its residual,
as k-means does), and returns how many times smaller the noise of the two surfaces is than that of one.
A smooth surface (quadratic in log N and log D) on the residuals absorbs a misfit of the law's shape, so
only a split into two families remains. For one law plus noise the ratio is about 1.7 (1.8 to 3.1 on
every vendored table and setup: Chinchilla's runs, the OLMo and Gadre et al. ladders, each of Porian et
al.'s 15 experiments; up to 3.1 in 99 % of Gaussian samples of 30 runs); for two corpora whose
irreducible losses differ by 0.4 to 0.8 nats (30 runs each, 0.5 % noise, six seeds) it is 5.0 to 25.
`MIXTURE_RATIO` = 4 lies between. Two corpora whose irreducible losses differ by 0.1 nats or less are
not told apart from one law (ratio 1.5 to 1.9).

Units: residuals are log(loss) - log(prediction), N params, D tokens.
"""

from __future__ import annotations

import numpy as np

MIXTURE_RATIO = 4.0  # one surface's noise over two surfaces' noise above which the runs look mixed
_ITERATIONS = 30  # of the alternating split; it settles within a few on every table tried


def _surface(log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """Features of a quadratic surface in centred log N and log D: (n, 6)."""
    x, y = log_n - log_n.mean(), log_d - log_d.mean()
    return np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])


def mixture_ratio(log_residuals: np.ndarray, N: np.ndarray, D: np.ndarray) -> float | None:
    """Noise of one smooth surface through the residuals over that of the best two (see the module
    docstring); None when the runs are too few for two surfaces (fewer than 4 runs per feature)."""
    r = np.asarray(log_residuals, dtype=float)
    features = _surface(np.log(N), np.log(D))
    n, p = features.shape

    def fitted(rows: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(features[rows], r[rows], rcond=None)
        return features @ coef

    if n < 4 * p:
        return None

    def two_surfaces(upper: np.ndarray) -> float:
        """Alternate from the split `upper`; the summed squares of the two surfaces it settles on."""
        for _ in range(_ITERATIONS):
            if min(upper.sum(), (~upper).sum()) < 2 * p:
                return np.inf  # the split collapsed: one family
            moved = (r - fitted(upper)) ** 2 < (r - fitted(~upper)) ** 2
            if (moved == upper).all():
                break
            upper = moved
        if min(upper.sum(), (~upper).sum()) < 2 * p:
            return np.inf
        return float(np.sum((r - fitted(upper))[upper] ** 2) + np.sum((r - fitted(~upper))[~upper] ** 2))

    smooth = fitted(np.ones(n, dtype=bool))
    one = np.sum((r - smooth) ** 2) / (n - p)
    # two starts (above the median residual, above the smooth surface): the alternation finds local optima
    two = min(two_surfaces(r > np.median(r)), two_surfaces(r > smooth)) / (n - 2 * p)
    if not np.isfinite(two):
        return 1.0
    return float(np.sqrt(one / two)) if two > 0 else float("inf")
