"""The result of a fit: `FitResult` (parameters, intervals, the runs and stages behind them), its versioned
JSON, and `save_fit` / `load_fit`.

Units: N params, D tokens, C FLOPs, loss nats/token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scaling.defaults import HUBER_DELTA
from scaling.errors import UsageError
from scaling.fitting.choice import LawChoice
from scaling.fitting.data import check_params_column
from scaling.fitting.design import Design
from scaling.fitting.laws import Inputs, get_law
from scaling.fitting.optimal import ComputeOptimal
from scaling.io import atomic_write_json, read_json

FORMAT = "scaling.fit/1"
# Most bootstrap refits that fail are the resamples farthest from the fit: past this share of failures
# (the 5 % that the two tails of a 95 % interval hold) the missing ones could be a whole tail, so the
# intervals are called unreliable instead of printed.
MAX_FAILED_SHARE = 0.05


@dataclass(frozen=True)
class FitStage:
    """One stage of a staged fit: the parameters it fitted (the others held fixed) on which runs.
    `rows` are 0-based positions in the fitted run table, in its order."""

    name: str
    fitted: tuple[str, ...]
    rows: tuple[int, ...]
    rule: str
    objective: float
    converged: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "fitted": list(self.fitted),
            "rows": list(self.rows),
            "n_points": len(self.rows),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FitStage:
        return cls(
            name=str(obj["name"]),
            fitted=tuple(str(k) for k in obj["fitted"]),
            rows=tuple(int(i) for i in obj["rows"]),
            rule=str(obj["rule"]),
            objective=float(obj["objective"]),
            converged=bool(obj["converged"]),
        )


@dataclass(frozen=True)
class FitResult:
    """A fitted law. `params` in natural units (e.g. E in nats/token, A and B such that A/N^alpha is in
    nats/token); `objective` is the summed loss of log residuals (Chinchilla's for `loss="huber"`);
    `ci` holds 95 % bootstrap intervals for every parameter and, for laws in N and D, for a, b and G of
    `compute_optimal` (N_opt = G (C/6)^a params, D_opt = (1/G) (C/6)^b tokens).

    `compute_optimal` (the law's closed form at `params`) and `bootstrap_optimal` (the same for every row
    of `bootstrap_params`, as (K,) arrays) are derived when the result is made; None for a law not in N
    and D."""

    law: str
    params: dict[str, float]
    objective: float
    n_points: int
    converged: bool
    _: KW_ONLY
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    bootstrap_params: np.ndarray | None = None  # (K, len(param_names)), natural units
    message: str = ""
    method: str = "profile"
    loss: str = "huber"
    delta: float = HUBER_DELTA
    n_bootstrap_failed: int = 0
    data_range: dict[str, tuple[float, float]] | None = None  # {"N": (min, max), "D": ..., "C": ...} fitted
    procedure: str = "joint"  # one of the law's `procedures`; "two_stage" for data_constrained's default
    stages: tuple[FitStage, ...] = ()  # what each stage fitted on which runs (staged procedures only)
    # run-to-run noise of log(loss), from the residuals (scaling.fitting.intervals)
    noise_sigma: float | None = None
    params_column: str = "N"  # the parameter count the law reads: "N" (non-embedding) or "N_total"
    selection: LawChoice | None = None  # from `select.fit_auto`: the rolling backtest behind the choice
    design: Design | None = None  # what the runs identify (scaling.fitting.design); None in older files
    # derived from bootstrap_params unless given (`with_bootstrap` gives the one its intervals came from)
    bootstrap_optimal: ComputeOptimal | None = field(default=None, repr=False, compare=False)
    compute_optimal: ComputeOptimal | None = field(init=False)

    def __post_init__(self) -> None:
        law = get_law(self.law)
        if not self.identifies_allocation:  # the law has one, but not from these runs
            object.__setattr__(self, "compute_optimal", None)
            object.__setattr__(self, "bootstrap_optimal", None)
            return
        object.__setattr__(self, "compute_optimal", law.compute_optimal(self.params))
        if self.bootstrap_optimal is None and self.bootstrap_params is not None:
            object.__setattr__(self, "bootstrap_optimal", law.bootstrap_optimal(self.bootstrap_params))

    def __repr__(self) -> str:
        n_boot = 0 if self.bootstrap_params is None else len(self.bootstrap_params)
        params = ", ".join(f"{k}={v:.6g}" for k, v in self.params.items())
        return (
            f"FitResult(law={self.law!r}, {params}, objective={self.objective:.6g}, "
            f"n_points={self.n_points}, converged={self.converged}, procedure={self.procedure!r}, "
            f"bootstrap={n_boot})"
        )

    @property
    def param_names(self) -> tuple[str, ...]:
        return get_law(self.law).param_names

    @property
    def identifies_allocation(self) -> bool:
        """Whether the runs behind the fit determine its compute-optimal allocation (a design in which N
        and D vary independently; a fit without a recorded design is trusted as before)."""
        return self.design is None or self.design.identifies_allocation

    def require_compute_optimal(self) -> ComputeOptimal:
        """`compute_optimal`, or UsageError saying why there is none: a law not in N and D, or runs that
        do not identify the allocation."""
        if not self.identifies_allocation:
            raise UsageError(
                f"the compute-optimal allocation of this {self.law} fit is {self.design.not_identified}"
            )
        if self.compute_optimal is None:
            raise UsageError(
                f"a {self.law} fit has no compute-optimal allocation; fit a law in N and D "
                "(chinchilla, kaplan_nd or data_constrained) to the runs"
            )
        return self.compute_optimal

    @property
    def n_bootstrap(self) -> int:
        """Bootstrap resamples drawn: those refitted (`bootstrap_params`) and those that failed."""
        return (0 if self.bootstrap_params is None else len(self.bootstrap_params)) + self.n_bootstrap_failed

    @property
    def bootstrap_unreliable(self) -> str | None:
        """Why the bootstrap intervals are not to be trusted (more than `MAX_FAILED_SHARE` of the refits
        failed), or None."""
        if self.n_bootstrap and self.n_bootstrap_failed > MAX_FAILED_SHARE * self.n_bootstrap:
            return (
                f"{self.n_bootstrap_failed} of {self.n_bootstrap} bootstrap refits failed, more than "
                f"{MAX_FAILED_SHARE:.0%}: the intervals are unreliable"
            )
        return None

    def predict(
        self, N: ArrayLike | None = None, D: ArrayLike | None = None, C: ArrayLike | None = None,
        U: ArrayLike | None = None,
    ) -> np.ndarray:
        """Predicted loss (nats/token) at N params, D tokens, C FLOPs (any two), U unique tokens."""
        return get_law(self.law).predict(self.params, N=N, D=D, C=C, U=U)

    def bootstrap_predict(
        self, N: ArrayLike | None = None, D: ArrayLike | None = None, C: ArrayLike | None = None,
        U: ArrayLike | None = None,
    ) -> np.ndarray | None:
        """Predicted loss under every bootstrap parameter set: (K, n) nats/token, or None."""
        if self.bootstrap_params is None:
            return None
        law = get_law(self.law)
        theta = np.stack(
            [law.to_theta(dict(zip(law.param_names, row, strict=True))) for row in self.bootstrap_params]
        )
        return np.exp(law.log_predict(theta, Inputs.make(N, D, C, U)))

    def describe(self) -> str:
        """A readable table of the fit, every number with its unit."""
        law = get_law(self.law)
        objective = f"summed Huber (delta {self.delta:g})" if self.loss == "huber" else "summed 0.5 r^2"
        n_boot = 0 if self.bootstrap_params is None else len(self.bootstrap_params)
        unreliable = self.bootstrap_unreliable
        show_ci = n_boot and unreliable is None
        lines = [
            f"law {law.name}: {law.formula}   (loss in nats/token, N params, D tokens, C FLOPs)",
            *([] if self.design is None else [self.design.describe()]),
            f"fitted on {self.n_points} runs; objective ({objective} of log residuals) "
            f"= {self.objective:.9g}",
            f"{'converged' if self.converged else 'NOT CONVERGED'}: {self.message}",
            *(
                f"  stage {i} ({st.name}): fitted {', '.join(st.fitted)} on {len(st.rows)} runs ({st.rule})"
                + (f"; objective {st.objective:.6g}" if math.isfinite(st.objective) else "")
                + ("" if st.converged else ", NOT CONVERGED")
                for i, st in enumerate(self.stages, 1)
            ),
            f"  {'parameter':<10s} {'value':>12s}   "
            + (f"95 % CI (bootstrap, {n_boot} resamples)" if show_ci else ""),
        ]
        for name in law.param_names:
            ci = self.ci.get(name) if show_ci else None
            shown = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            lines.append(f"  {name:<10s} {self.params[name]:12.6g}   {shown:<24s} {law.units.get(name, '')}")
        if unreliable:
            lines.append(f"  no intervals: {unreliable}")
        elif self.n_bootstrap_failed:
            lines.append(f"  ({self.n_bootstrap_failed} bootstrap refits did not converge and were left out)")
        if not self.identifies_allocation:
            lines.append(f"compute-optimal allocation: {self.design.not_identified}")
        if self.compute_optimal:
            o = self.compute_optimal
            lines.append(
                f"compute-optimal (Approach 3): N_opt = {o.G:.4g} (C/6)^{o.a:.4f} params, "
                f"D_opt = {1 / o.G:.4g} (C/6)^{o.b:.4f} tokens"
            )
            for k, value in (("a", o.a), ("b", o.b)):
                if k in self.ci and show_ci:
                    lines.append(f"  {k} = {value:.4f}  95 % CI [{self.ci[k][0]:.4f}, {self.ci[k][1]:.4f}]")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "law": self.law,
            "params": dict(self.params),
            "objective": self.objective,
            "n_points": self.n_points,
            "converged": self.converged,
            "message": self.message,
            "method": self.method,
            "loss": self.loss,
            "delta": self.delta,
            "ci": {k: [lo, hi] for k, (lo, hi) in self.ci.items()},
            "compute_optimal": None if self.compute_optimal is None else self.compute_optimal.to_json(),
            "n_bootstrap_failed": self.n_bootstrap_failed,
            "data_range": None
            if self.data_range is None
            else {k: list(v) for k, v in self.data_range.items()},
            "bootstrap_params": None if self.bootstrap_params is None else self.bootstrap_params.tolist(),
            "procedure": self.procedure,
            "stages": [stage.to_json() for stage in self.stages],
            "noise_sigma": self.noise_sigma,
            "params_column": self.params_column,
            "selection": None if self.selection is None else self.selection.to_json(),
            "design": None if self.design is None else self.design.to_json(),
            "intervals_unreliable": self.bootstrap_unreliable,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FitResult:
        """Inverse of to_json; UsageError when `obj` is not a fit of a known law."""
        if not isinstance(obj, Mapping) or "law" not in obj or "params" not in obj:
            raise UsageError(
                "not a fit result: expected a JSON object with 'law' and 'params' (from `scaling fit --json`)"
            )
        law = get_law(str(obj["law"]))
        params = obj["params"]
        if not isinstance(params, Mapping) or set(params) != set(law.param_names):
            raise UsageError(f"fit result for law {law.name} must have params {', '.join(law.param_names)}")
        try:
            values = {k: float(params[k]) for k in law.param_names}
            with np.errstate(all="ignore"):  # the log of a hand-edited negative scale is NaN: refused below
                theta = law.to_theta(values)
            bounds = law.theta_bounds()
            lo, hi = (law.natural(bound) for bound in bounds)
            for i, k in enumerate(law.param_names):
                if not bounds[0][i] <= theta[i] <= bounds[1][i]:
                    raise UsageError(
                        f"fit result for law {law.name} has {k}={values[k]:g}, outside the range a fit can "
                        f"give ({lo[i]:.3g} to {hi[i]:.3g})"
                    )
            boot = obj.get("bootstrap_params")
            boot = None if boot is None else np.asarray(boot, dtype=float).reshape(-1, len(law.param_names))
            ci = {str(k): (float(v[0]), float(v[1])) for k, v in (obj.get("ci") or {}).items()}
            return cls(
                law=law.name,
                params=values,
                objective=float(obj.get("objective", math.nan)),
                n_points=int(obj.get("n_points", 0)),
                # no key: parameters given by hand (a published set), not fitted: nothing failed to converge
                converged=bool(obj.get("converged", True)),
                ci=ci,
                bootstrap_params=boot,
                message=str(obj.get("message", "")),
                method=str(obj.get("method", "profile")),
                loss=str(obj.get("loss", "huber")),
                delta=float(obj.get("delta", HUBER_DELTA)),
                n_bootstrap_failed=int(obj.get("n_bootstrap_failed", 0)),
                data_range=None
                if obj.get("data_range") is None
                else {str(k): (float(v[0]), float(v[1])) for k, v in obj["data_range"].items()},
                procedure=str(obj.get("procedure", "joint")),
                stages=tuple(FitStage.from_json(stage) for stage in obj.get("stages") or ()),
                noise_sigma=None if obj.get("noise_sigma") is None else float(obj["noise_sigma"]),
                params_column=check_params_column(str(obj.get("params_column", "N"))),
                selection=None if obj.get("selection") is None else LawChoice.from_json(obj["selection"]),
                design=None if obj.get("design") is None else Design.from_json(obj["design"]),
            )
        except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
            raise UsageError(f"malformed fit result: {exc}") from None


def save_fit(result: FitResult, path: str | Path) -> None:
    """Write `result.to_json()` atomically (a reader never sees half a file)."""
    atomic_write_json(path, result.to_json())


def load_fit(path: str | Path) -> FitResult:
    """Read a fit written by `save_fit` / `scaling fit --json`; UsageError on anything else."""
    return FitResult.from_json(read_json(path, "a fit result JSON"))
