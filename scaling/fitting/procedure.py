"""`fit`: a law fitted to a run table, jointly (every parameter at once) or, for the data-constrained law,
in Muennighoff et al.'s two stages; with a bootstrap of either.

The objective is `scaling.fitting.objective`'s, its optimum found by `scaling.fitting.solvers`, the
intervals by `scaling.fitting.bootstrap`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from scaling.defaults import HUBER_DELTA, METHODS
from scaling.errors import NON_NEGATIVE, Constraint, ScalingWarning, UsageError, checked, one_of
from scaling.fitting.bootstrap import bootstrap_thetas, bootstrap_weights, refit_weighted, with_bootstrap
from scaling.fitting.data import prepare_runs
from scaling.fitting.intervals import noise_sigma
from scaling.fitting.laws import Frozen, Inputs, get_law
from scaling.fitting.objective import LOSSES, Problem
from scaling.fitting.residuals import MIXTURE_RATIO, mixture_ratio
from scaling.fitting.result import FitResult, FitStage
from scaling.fitting.solvers import classic_fit, global_fit, newton, relative_decrement, single_threaded_blas

# `--law auto`: the law with the lowest rolling-backtest error (scaling.fitting.select.fit_auto)
AUTO = "auto"


@single_threaded_blas
@checked(
    loss=one_of(LOSSES),
    delta=Constraint(lambda v: math.isfinite(v) and v > 0, "must be a positive number"),
    bootstrap=NON_NEGATIVE,
    seed=NON_NEGATIVE,  # numpy's generators take non-negative seeds only
    method=one_of(METHODS),
)
def fit(
    table: pd.DataFrame | str | Path,
    law: str = "chinchilla",
    *,
    bootstrap: int = 0,
    seed: int = 0,
    loss: str = "huber",
    delta: float = HUBER_DELTA,
    method: str = "profile",
    procedure: str | None = None,
    base: Mapping[str, float] | None = None,
    params_column: str = "N",
) -> FitResult:
    """Fit `law` to a run table (columns N params, D tokens, C FLOPs, loss nats/token, optional U).

    Parameters
    ----------
    table : DataFrame or path accepted by `scaling.runs.table.load_runs`.
    law : one of `scaling.fitting.laws.LAW_NAMES`. To let a rolling backtest choose the law (`--law auto`),
        call `scaling.fitting.select.fit_auto`: the choice is built of fits, so it sits above this function.
    bootstrap : number of resamples (with replacement, of runs) for 95 % intervals; 0 for none.
    seed : seeds the resampling.
    loss : "huber" (Chinchilla's, with `delta` on log residuals) or "squared" (0.5 r^2).
    method : "profile" (our global search) or "classic" (Hoffmann et al.'s 4500-start L-BFGS-B grid with
        finite differences; chinchilla only, minutes).
    procedure : one of the law's `procedures`, None for its default: "joint" (every parameter at once) or,
        for data_constrained, "two_stage" (the default; Muennighoff et al.'s: base law with alpha = beta on
        the runs of at most 2.5 epochs, then R_D*, R_N* with the base fixed on all runs; the bootstrap
        redoes both stages).
    base : two_stage only: the base law's parameters (E, A, B, alpha of chinchilla_tied) fitted elsewhere,
        on runs without repetition, as Muennighoff et al. took theirs from Chinchilla's C4 IsoFLOP runs;
        stage 1 is then skipped (and not bootstrapped).
    params_column : "N" (non-embedding parameters, the default) or "N_total" (all parameters, a column
        of the table): the count the law reads as N. Predictions convert a target's N the same way.
    """
    if method == "classic" and bootstrap:
        raise UsageError("`method` classic is for comparison only; bootstrap with the default method")
    if law == AUTO:
        raise UsageError(
            'law "auto" is a choice among laws by rolling backtest, made of fits: call '
            "scaling.fitting.select.fit_auto(table, ...) (what `scaling fit --law auto` runs)"
        )
    law_obj = get_law(law)
    procedure = law_obj.procedures[0] if procedure is None else procedure
    if procedure not in law_obj.procedures:
        raise UsageError(
            f"unknown procedure {procedure!r} for law {law_obj.name}; choose {', '.join(law_obj.procedures)}"
        )
    if procedure != "joint" and method != "profile":
        raise UsageError(f"`method` {method} fits jointly; use it with `procedure` joint")
    if base is not None and procedure != "two_stage":
        raise UsageError("a given base law is for the two-stage fit of law data_constrained only")
    runs = prepare_runs(table, law_obj, params_column)
    table, X = runs.table, runs.X
    problem = Problem(law_obj, X, np.log(runs.loss), loss, delta)
    staged = None
    if procedure == "two_stage":
        staged = _two_stage_fit(problem, base)
        theta, fval, converged = staged.theta, staged.objective, staged.converged
    elif method == "profile":
        theta, fval, converged = global_fit(problem)
    elif method == "classic":
        if law_obj.name != "chinchilla":
            raise UsageError("`method` classic is Hoffmann et al.'s grid for the chinchilla law only")
        theta, fval = classic_fit(problem)
        converged = bool(newton(problem, theta[None], max_iter=1)[2][0])
    params = law_obj.from_theta(theta)
    if converged:
        message = "Newton decrement ~ 0: a certified stationary point of the objective"
    else:
        message = (
            "did NOT converge: not a stationary point; a Newton step would lower the objective by a further "
            f"{relative_decrement(problem, theta):.2g} of its value; treat the parameters with care"
        )
    if law_obj.name == "kaplan_c":
        message += f"; fitted on the {len(table)} runs of the compute-efficient frontier"
    if problem.prior is not None:
        message += f"; {problem.prior.describe()}"
    lo, hi = law_obj.theta_bounds()
    pinned = [k for k, t, a, b in zip(law_obj.param_names, theta, lo, hi, strict=True) if t <= a or t >= b]
    residuals = problem.y - law_obj.log_predict(theta, X)
    if pinned:
        note = f"{', '.join(pinned)} at the edge of the allowed range: these runs do not determine it"
        message += f"; {note}"
        warnings.warn(f"law {law_obj.name}: {note}", ScalingWarning, stacklevel=2)
    result = FitResult(
        law=law_obj.name,
        params=params,
        objective=fval,
        n_points=len(table),
        converged=converged,
        message=message,
        method=method,
        loss=loss,
        delta=delta,
        data_range={k: (float(table[k].min()), float(table[k].max())) for k in ("N", "D", "C")},
        procedure=procedure,
        stages=() if staged is None else staged.stages,
        noise_sigma=noise_sigma(residuals, len(law_obj.param_names)),
        params_column=params_column,
        design=runs.design,
    )
    if not converged:
        warnings.warn(f"fit of law {law_obj.name} did not converge", ScalingWarning, stacklevel=2)
    if runs.design.repeats and "U" not in law_obj.inputs:
        warnings.warn(f"law {law_obj.name}: {runs.design.repeats}", ScalingWarning, stacklevel=2)
    mixed = mixture_ratio(residuals, table["N"].to_numpy(float), table["D"].to_numpy(float))
    if mixed is not None and mixed > MIXTURE_RATIO:
        warnings.warn(
            f"law {law_obj.name}: the runs split into two groups, each fitted by its own smooth surface "
            f"with {mixed:.3g}x less noise than one law's ({result.noise_sigma:.2%}): they look like two "
            "families (corpora, tokenizers or setups) in one table, not one law; fit each on its own",
            ScalingWarning,
            stacklevel=2,
        )
    if bootstrap:
        if staged is None:
            thetas, ok = bootstrap_thetas(problem, theta, bootstrap, seed)
        else:
            thetas, ok = staged.bootstrap(bootstrap_weights(problem.y.size, bootstrap, seed))
        result = with_bootstrap(result, law_obj, thetas, ok)
    return result


# ---- staged fit: Muennighoff et al.'s procedure for the data-constrained law ---------------------------
@dataclass(frozen=True)
class _TwoStage:
    """A two-stage fit: the base law (tied exponents) on the runs of few epochs, then the repetition
    parameters with the base fixed on all runs. `theta` is the full law's, `stages` what each stage used;
    `base` is None when the base law was given rather than fitted."""

    base: Problem | None  # stage 1: law chinchilla_tied on the runs of rows `stages[0].rows`
    repeats: Problem  # stage 2: the full law with only its repetition parameters free, all runs
    base_theta: np.ndarray
    theta: np.ndarray
    objective: float
    converged: bool
    stages: tuple[FitStage, ...]

    @staticmethod
    def full_theta(base_theta: np.ndarray, repeat_theta: np.ndarray) -> np.ndarray:
        """(e, a, b, alpha) of the tied base and (log R_D*, log R_N*) -> the 7 of data_constrained."""
        return np.concatenate([base_theta, base_theta[..., 3:4], repeat_theta], axis=-1)

    def bootstrap(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both stages redone on every resample (`weights` (K, n) counts of all runs); a given base stays."""
        k = len(weights)
        base, ok_base = np.tile(self.base_theta, (k, 1)), np.ones(k, dtype=bool)
        if self.base is not None:
            rows = np.array(self.stages[0].rows)
            base, ok_base = refit_weighted(self.base, weights[:, rows], base)
        start = self.full_theta(base, np.tile(self.theta[-2:], (k, 1)))
        thetas, ok = refit_weighted(self.repeats, weights, start)
        return thetas, ok & ok_base


def _two_stage_fit(problem: Problem, given_base: Mapping[str, float] | None = None) -> _TwoStage:
    """Muennighoff et al. 2023's fit of the data-constrained law (huggingface/datablations,
    utils/parametric_fit.ipynb): stage 1 fits E, A, B and alpha = beta on runs without (much) repetition,
    here the runs of at most `law.base_max_epochs` epochs (D / U), unless `given_base` holds them; stage 2
    fits R_D* and R_N* with those fixed on all runs. Both minimise the same objective as the joint fit."""
    law, X = problem.law, problem.X
    base_law = get_law(law.base_law)
    if given_base is None:
        epochs = X.require("D") / X.require("U")
        rows = np.flatnonzero(epochs <= law.base_max_epochs * (1 + 1e-9))
        if rows.size <= len(base_law.param_names):
            raise UsageError(
                f"the two-stage fit of law {law.name} fits its base law on the runs of at most "
                f"{law.base_max_epochs:g} epochs and needs more than {len(base_law.param_names)}; these runs "
                f"have {rows.size}. Use `procedure` joint"
            )
        base_X = Inputs.make(N=X.N[rows], D=X.D[rows])
        try:
            base_law.check_data(base_X)
        except UsageError as exc:
            raise UsageError(f"{exc} among the runs of at most {law.base_max_epochs:g} epochs") from None
        base = Problem(base_law, base_X, problem.y[rows], problem.loss, problem.delta)
        base_theta, base_f, base_ok = global_fit(base)
        rule = f"runs of at most {law.base_max_epochs:g} epochs (D / U), with alpha = beta"
    else:
        missing = [k for k in base_law.param_names if k not in given_base]
        if missing:
            raise UsageError(
                f"the given base law needs {', '.join(base_law.param_names)}; missing {', '.join(missing)}"
            )
        base, rows, base_f, base_ok = None, np.array([], dtype=int), math.nan, True
        base_theta = base_law.to_theta(given_base)
        rule = "given, fitted elsewhere"
    fixed = base_law.from_theta(base_theta)
    fixed["beta"] = fixed["alpha"]
    repeats = Problem(Frozen(law, law.repetition_params, fixed), X, problem.y, problem.loss, problem.delta)
    theta, fval, ok = _repetition_search(repeats, fixed)
    stages = (
        FitStage("base", base_law.param_names, tuple(int(i) for i in rows), rule, base_f, base_ok),
        FitStage(
            "repetition",
            law.repetition_params,
            tuple(range(problem.y.size)),
            f"all runs, with {', '.join(k for k in law.param_names if k not in law.repetition_params)} fixed",
            fval,
            ok,
        ),
    )
    return _TwoStage(base, repeats, base_theta, theta, fval, bool(base_ok and ok), stages)


def _repetition_search(repeats: Problem, fixed: Mapping[str, float]) -> tuple[np.ndarray, float, bool]:
    """Stage 2 as the paper searched it: L-BFGS in R* itself (epochs, not log epochs) from every pair of
    the published starts `law.repetition_starts`, then Newton from the best to certify the optimum.

    Why not a global search: on the paper's runs stage 2 has several minima (R_D* ~ 15, 47 and 95 within
    0.2 % of one objective) and which one a local search reaches depends on the space it searches in. The
    objective is flat in R* for large R*, so searches in R* from starts of at most 20 epochs stay in the
    nearest basin, as the paper's did (torch L-BFGS on R*). A lower minimum elsewhere is reported."""
    law = repeats.law.law
    free = [law.param_names.index(k) for k in law.repetition_params]
    lo, hi = law.theta_bounds()
    r_bounds = list(zip(np.exp(lo[free]), np.exp(hi[free]), strict=True))

    base_theta = law.to_theta({**fixed, **dict.fromkeys(law.repetition_params, 1.0)})

    def theta_at(r_star: np.ndarray) -> np.ndarray:
        theta = base_theta.copy()
        theta[free] = np.log(r_star)
        return theta

    def fun(r_star: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = repeats.value_grad(theta_at(r_star))
        if not np.isfinite(f):
            return 1e300, np.zeros_like(r_star)
        return float(f), np.reshape(g, -1)[free] / r_star  # d/dR* = d/dlog R* / R*

    searched = [
        optimize.minimize(fun, start, jac=True, method="L-BFGS-B", bounds=r_bounds)
        for start in itertools.product(law.repetition_starts, repeat=len(free))
    ]
    best = min(searched, key=lambda result: result.fun)
    theta, fval, ok = newton(repeats, theta_at(best.x)[None])
    lowest, lowest_f, _ = global_fit(repeats)
    r_d = law.repetition_params[0]
    found, elsewhere = law.from_theta(theta[0])[r_d], law.from_theta(lowest)[r_d]
    if lowest_f < fval[0] * (1 - 1e-6) and not 0.8 < elsewhere / found < 1.25:
        warnings.warn(
            f"law {law.name}: stage 2 also has a minimum at {r_d} = {elsewhere:.3g} with a "
            f"{1 - lowest_f / fval[0]:.2%} lower objective than the published search's {r_d} = {found:.3g}: "
            f"these runs do not determine {r_d}",
            ScalingWarning,
            stacklevel=5,
        )
    return theta[0], float(fval[0]), bool(ok[0])
