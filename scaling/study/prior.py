"""The prior of a sweep plan: what we believe about the law before the sweep, as samples of its parameters.

From a fit (`scaling fit --json`): its bootstrap parameter sets, else its 95 % intervals, else its point
estimate widened by Epoch AI's interval widths (a plan for one point is brittle). Without a fit: Epoch AI's
Chinchilla refit (Besiroglu et al. 2024) and its 95 % bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scaling.errors import UsageError
from scaling.fitting.laws import Law, get_law
from scaling.fitting.result import FitResult
from scaling.reference import EPOCH_INTERVALS, EPOCH_PRIOR

PRIOR_SAMPLES = 64  # prior parameter sets the criterion averages over
Z95 = 1.959963984540054


# ---- the prior ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """What we believe about the law before the sweep: a central parameter set and samples of theta
    (the law's internal parameters, logs of its scales) that express the uncertainty."""

    law: str
    params: dict[str, float]  # natural units
    thetas: np.ndarray = field(repr=False)  # (K, p)
    source: str = ""

    @classmethod
    def epoch(cls, *, samples: int = PRIOR_SAMPLES, seed: int = 0) -> Prior:
        """Epoch AI's Chinchilla refit, its 95 % intervals read as independent normals in theta."""
        law = get_law("chinchilla")
        return cls(
            "chinchilla",
            dict(EPOCH_PRIOR),
            _sample_intervals(law, EPOCH_PRIOR, EPOCH_INTERVALS, samples, seed),
            "Epoch AI's Chinchilla refit (Besiroglu et al. 2024) and its 95 % bootstrap intervals",
        )

    @classmethod
    def from_fit(cls, fit_result: FitResult, *, samples: int = PRIOR_SAMPLES, seed: int = 0) -> Prior:
        """A fit (`scaling fit --json`): its bootstrap parameter sets, else its intervals, else the point.

        A fit with neither (`scaling fit` without --bootstrap) is widened: each parameter gets the spread
        of Epoch AI's 95 % intervals (`widened_intervals`), so that the plan never bets on one point.

        Raises UsageError when the fit's law cannot answer a question about N and D."""
        law = planning_law(fit_result.law)
        params = {k: float(fit_result.params[k]) for k in law.param_names}
        boot = fit_result.bootstrap_params
        if boot is not None and len(boot) >= 2:
            rng = np.random.default_rng(seed)
            rows = boot if len(boot) <= samples else boot[rng.choice(len(boot), samples, replace=False)]
            thetas = np.stack([law.to_theta(dict(zip(law.param_names, row, strict=True))) for row in rows])
            source = f"the fit's {len(boot)} bootstrap parameter sets ({len(rows)} used)"
        elif all(k in fit_result.ci for k in law.param_names):
            thetas = _sample_intervals(law, params, fit_result.ci, samples, seed)
            source = "the fit's 95 % intervals"
        else:
            thetas = _sample_intervals(law, params, widened_intervals(law, params), samples, seed)
            source = "the fit's point estimate, widened by Epoch AI's 95 % interval widths (no bootstrap)"
        if not np.all(np.isfinite(thetas)):
            raise UsageError("the prior fit has non-finite parameters; refit it")
        return cls(law.name, params, thetas, source)


def widened_intervals(law: Law, params: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """95 % intervals around `params` as wide, in theta (log for scales), as Epoch AI's intervals of the
    same parameter: their refit of Chinchilla's ~245 runs is the best-measured published fit, so a fit of
    one sweep is at least this uncertain. UsageError for a law whose parameters Epoch did not estimate."""
    if not set(law.param_names) <= set(EPOCH_INTERVALS):
        raise UsageError(
            f"the prior {law.name} fit has no bootstrap and no intervals to say how uncertain it is; refit "
            "it with --bootstrap 200 (a plan for one point estimate is brittle)"
        )
    epoch = get_law("chinchilla")
    bounds = [epoch.to_theta({n: v[end] for n, v in EPOCH_INTERVALS.items()}) for end in (0, 1)]
    half = dict(zip(epoch.param_names, (bounds[1] - bounds[0]) / 2, strict=True))
    centre, step = law.to_theta(params), np.array([half[n] for n in law.param_names])
    lo, hi = law.from_theta(centre - step), law.from_theta(centre + step)
    return {n: (lo[n], hi[n]) for n in law.param_names}


def planning_law(name: str) -> Law:
    """The law `name` if it predicts loss from N and D alone, as planning needs; UsageError otherwise."""
    law = get_law(name)
    if tuple(law.inputs) != ("N", "D"):
        raise UsageError(
            f"a {law.name} prior cannot answer: planning needs a law of N and D alone (chinchilla or "
            f"kaplan_nd), and {law.name} reads {', '.join(law.inputs)}; refit with --law chinchilla"
        )
    return law


def _sample_intervals(
    law: Law, params: Mapping[str, float], intervals: Mapping[str, Sequence[float]], k: int, seed: int
) -> np.ndarray:
    """k thetas, each parameter normal in theta (log for scales) with the interval as its 95 % range."""
    rng = np.random.default_rng(seed)
    centre = law.to_theta(params)
    lo = law.to_theta({n: intervals[n][0] for n in law.param_names})
    hi = law.to_theta({n: intervals[n][1] for n in law.param_names})
    sd = np.abs(hi - lo) / (2 * Z95)
    draws = centre + sd * rng.standard_normal((k, centre.size))
    low, high = law.theta_bounds()
    return np.clip(draws, low, high)
