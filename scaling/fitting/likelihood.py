"""The likelihood-ratio test of a published parameter set against the free fit (Besiroglu et al. 2024).

Units: loss nats/token; the statistic and log-likelihoods are dimensionless.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from scaling.errors import UsageError
from scaling.fitting.data import prepare_runs
from scaling.fitting.laws import get_law
from scaling.fitting.objective import Problem, rho
from scaling.fitting.result import FitResult
from scaling.fitting.solvers import global_fit, single_threaded_blas

FORMAT = "scaling.likelihood_ratio_test/1"


@dataclass(frozen=True)
class LikelihoodRatioTest:
    """Test of a published parameter set against the free fit (Besiroglu et al. 2024, section 3).

    Residuals of log loss are modelled by a scaled Huber density, log p(r) = -huber(r / s) - log(s Z);
    the null fixes the law's parameters (scale s free), the alternative frees them all.
    statistic = 2 (log L_free - log L_null) ~ chi^2(df = number of law parameters)."""

    params: dict[str, float]
    statistic: float
    df: int
    p_value: float
    log_likelihood_null: float
    log_likelihood_free: float

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__, "params": dict(self.params)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LikelihoodRatioTest:
        """Inverse of to_json; UsageError on anything else."""
        try:
            return cls(
                params={str(k): float(v) for k, v in obj["params"].items()},
                statistic=float(obj["statistic"]),
                df=int(obj["df"]),
                p_value=float(obj["p_value"]),
                log_likelihood_null=float(obj["log_likelihood_null"]),
                log_likelihood_free=float(obj["log_likelihood_free"]),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UsageError(f"malformed likelihood-ratio test: {exc}") from None

    def describe(self) -> str:
        """One line: the parameters tested, the statistic, its p-value and the verdict at 5 %."""
        return (
            f"likelihood-ratio test of {', '.join(f'{k}={v:g}' for k, v in self.params.items())}: "
            f"statistic {self.statistic:.4g}, chi^2 with {self.df} dof, p-value {self.p_value:.3g}"
            + ("  (rejected at 5 %)" if self.p_value < 0.05 else "  (not rejected at 5 %)")
        )


def _huber_log_norm(delta: float) -> float:
    return math.log(
        math.sqrt(2 * math.pi) * (1 - 2 * stats.norm.sf(delta)) + 2 * math.exp(-0.5 * delta * delta) / delta
    )


def _max_log_likelihood(problem: Problem, theta: np.ndarray, free: bool) -> float:
    """Maximum over the scale (and over theta when `free`) of the scaled-Huber log-likelihood."""
    n, delta, law = problem.y.size, problem.delta, problem.law
    lo, hi = law.theta_bounds()
    log_z = _huber_log_norm(delta)

    def neg_ll(x):
        th, log_s = (x[:-1], x[-1]) if free else (theta, x[0])
        logp, jac = law.jacobian(th, problem.X)
        s = math.exp(log_s)
        value, psi, _ = rho((problem.y - logp) / s, "huber", delta)
        r = (problem.y - logp) / s
        nll = value.sum() + n * (log_s + log_z)
        d_log_s = -(psi * r).sum() + n
        if not free:
            return nll, np.array([d_log_s])
        return nll, np.append(-(psi @ jac) / s, d_log_s)

    resid = problem.y - law.log_predict(theta, problem.X)
    x0 = [math.log(max(np.abs(resid).mean() / 1.0, 1e-12))]
    bounds = [(-40.0, 5.0)]
    if free:
        x0, bounds = [*theta, *x0], [*zip(lo, hi, strict=True), *bounds]
    best = math.inf
    for start in (x0, [*x0[:-1], x0[-1] - 3.0], [*x0[:-1], x0[-1] + 3.0]):
        res = optimize.minimize(
            neg_ll,
            np.array(start),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12},
        )
        best = min(best, float(res.fun))
    return -best


@single_threaded_blas
def likelihood_ratio_test(
    table: pd.DataFrame | str | Path,
    params: Mapping[str, float],
    *,
    law: str = "chinchilla",
    fit_result: FitResult | None = None,
) -> LikelihoodRatioTest:
    """p-value of the hypothesis that the runs follow `law` with exactly `params` (e.g. a published set)."""
    law_obj = get_law(law)
    missing = [k for k in law_obj.param_names if k not in params]
    if missing:
        raise UsageError(
            f"`params` for law {law_obj.name} must give {', '.join(law_obj.param_names)}; "
            f"missing {', '.join(missing)}"
        )
    runs = prepare_runs(table, law_obj)
    problem = Problem(law_obj, runs.X, np.log(runs.loss))
    if fit_result is None or fit_result.law != law_obj.name:
        theta_hat, _, _ = global_fit(problem)
    else:
        theta_hat = law_obj.to_theta(fit_result.params)
    ll_null = _max_log_likelihood(problem, law_obj.to_theta(params), free=False)
    ll_free = max(_max_log_likelihood(problem, theta_hat, free=True), ll_null)
    df = len(law_obj.param_names)
    statistic = 2.0 * (ll_free - ll_null)
    return LikelihoodRatioTest(
        params={k: float(params[k]) for k in law_obj.param_names},
        statistic=statistic,
        df=df,
        p_value=float(stats.chi2.sf(statistic, df)),
        log_likelihood_null=ll_null,
        log_likelihood_free=ll_free,
    )
