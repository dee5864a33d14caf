"""Compute-optimal allocation: how to split a FLOP budget C between parameters N and tokens D.

The three approaches of Hoffmann et al. 2022, each giving N_opt = G (C/6)^a params and
D_opt = C / (6 N_opt) tokens (`scaling.fitting.optimal.ComputeOptimal`; b and G_D of D_opt = G_D (C/6)^b are
reported as fitted, and equal 1 - a and 1/G: exactly for Approach 3, to rounding for 1 and 2, whose
points all have C = 6 N D):

1. lowest-loss envelope: over all runs' loss curves (metrics.jsonl, when the run folders have them) or
   final points, the runs on the compute-efficient frontier; power laws through their (C, N) and (C, D);
2. IsoFLOP profiles: runs of equal compute (within 1 %) form a profile; a fit of loss in ln N near its
   lowest observed loss gives its minimum N_opt(C): by default a parabola through the DEFAULT_WINDOW
   sizes nearest it, or the minimum of an Akima interpolant (Porian et al. 2024), or a parabola through
   the whole profile (Hoffmann et al.). Far from the minimum a profile is not a parabola, and its shape
   changes with C (big models given few steps lie far above it at small budgets), so a whole-profile
   parabola is pulled by the far ends. A budget whose lowest loss lies at the smallest or largest size
   tried is left out with a warning, never extrapolated. Power laws through the minima;
3. the closed form from a parametric fit (`scaling.fit`): a = beta / (alpha + beta),
   G = (alpha A / (beta B))^(1 / (alpha + beta)).

Intervals come from the bootstrap: runs resampled with replacement (within each IsoFLOP profile for
Approach 2), the whole approach redone for each resample.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import Akima1DInterpolator

from scaling.defaults import DEFAULT_WINDOW, PROFILE_FITS
from scaling.errors import (
    NON_NEGATIVE,
    Constraint,
    ScalingWarning,
    UsageError,
    check_arguments,
    checked,
    one_of,
    whole_number,
)
from scaling.fitting.design import Design
from scaling.fitting.intervals import interval_dict
from scaling.fitting.optimal import ComputeOptimal
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.fitting.solvers import single_threaded_blas
from scaling.io import check_format
from scaling.reference import (
    CHINCHILLA_70B,
    CHINCHILLA_BUDGET,
    FLOPS_PER_PARAM_TOKEN,
    GPT3_175B,
    tokens_for_compute,
)
from scaling.runs.table import ISOFLOP_TOLERANCE, compute_frontier, curve_of, load_runs, value_groups
from scaling.units import count, format_quantity

FORMAT = "scaling.allocation/1"  # the "format" key of `Allocation.to_json`
MIN_PROFILE_SIZES = 3  # distinct model sizes needed for a parabola
# Budgets (FLOPs) at which tokens per parameter are reported, besides the largest run of the data.
NAMED_BUDGETS: dict[str, float] = {
    "1e21 FLOPs": 1e21,
    f"{GPT3_175B.name} (6 x {format_quantity(GPT3_175B.N)} x {format_quantity(GPT3_175B.D)})": GPT3_175B.C,
    f"{CHINCHILLA_70B.name} / Gopher ({CHINCHILLA_BUDGET:.3g})".replace("e+", "e"): CHINCHILLA_BUDGET,
    "1e25 FLOPs": 1e25,
}


@dataclass(frozen=True)
class IsoFlopProfile:
    """Runs of one compute budget C (FLOPs) and the fit of loss against ln N near its minimum.

    `N`, `loss`: every run of the budget (params, nats/token); `used`: which of them the fit used;
    `method`: `window` (parabola through the `window` sizes nearest the lowest observed loss), `akima`
    (Akima interpolant of ln loss, Porian et al. 2024) or `parabola` (through every size); `coef`: the
    parabola loss = c0 + c1 x + c2 x^2, x = ln N (None for `akima`). `left_out` says why the budget's
    minimum is not used (e.g. it lies at the edge of the sizes tried), "" when it is; then N_opt, D_opt
    and loss_opt are NaN."""

    C: float
    N: np.ndarray
    loss: np.ndarray
    used: np.ndarray
    method: str
    window: int | None
    coef: tuple[float, float, float] | None
    N_opt: float
    D_opt: float
    loss_opt: float
    left_out: str = ""

    def curve(self, N: np.ndarray) -> np.ndarray:
        """The fitted profile's loss (nats/token) at N params."""
        x = np.log(np.asarray(N, dtype=float))
        if self.coef is None:
            sizes, log_loss = _mean_log_loss(self.N[self.used], self.loss[self.used])
            return np.exp(Akima1DInterpolator(np.log(sizes), log_loss)(x))
        c0, c1, c2 = self.coef
        return c0 + c1 * x + c2 * x * x

    def to_json(self) -> dict[str, Any]:
        kept = not self.left_out
        return {
            "C": self.C,
            "N": self.N.tolist(),
            "loss": self.loss.tolist(),
            "used": self.used.tolist(),
            "method": self.method,
            "window": self.window,
            "coef": None if self.coef is None else list(self.coef),
            "N_opt": self.N_opt if kept else None,
            "D_opt": self.D_opt if kept else None,
            "loss_opt": self.loss_opt if kept else None,
            "left_out": self.left_out or None,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> IsoFlopProfile:
        """Inverse of `to_json` (a budget left out reads back with NaN N_opt, D_opt and loss_opt)."""

        def number(key: str) -> float:
            return math.nan if obj[key] is None else float(obj[key])

        return cls(
            C=float(obj["C"]),
            N=np.asarray(obj["N"], dtype=float),
            loss=np.asarray(obj["loss"], dtype=float),
            used=np.asarray(obj["used"], dtype=bool),
            method=str(obj["method"]),
            window=None if obj["window"] is None else int(obj["window"]),
            coef=None if obj["coef"] is None else tuple(float(c) for c in obj["coef"]),
            N_opt=number("N_opt"),
            D_opt=number("D_opt"),
            loss_opt=number("loss_opt"),
            left_out=obj["left_out"] or "",
        )

    def __repr__(self) -> str:
        kept = f"N_opt={self.N_opt:.4g}" if not self.left_out else f"left_out={self.left_out!r}"
        return f"IsoFlopProfile(C={self.C:.4g}, runs={self.N.size}, method={self.method!r}, {kept})"


@dataclass(frozen=True)
class Allocation:
    """N_opt = G (C/6)^a params and D_opt = C / (6 N_opt) = G_D (C/6)^b tokens for a budget of C FLOPs.

    `points`: the (C, N, D, loss) the power laws were fitted through (frontier points for Approach 1,
    profile minima for Approach 2, none for Approach 3); `profiles`: Approach 2's IsoFLOP parabolas;
    `tokens_per_param`: D_opt / N_opt at each budget in `budgets` ({name: C FLOPs}). JSON (`to_json`,
    `from_json`) keeps every field but the bootstrap samples, of which it keeps their count and intervals;
    the fit is kept without its bootstrap parameter sets."""

    approach: int
    a: float
    b: float
    G: float
    G_D: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    tokens_per_param: dict[float, float] = field(default_factory=dict)
    tokens_per_param_ci: dict[float, tuple[float, float]] = field(default_factory=dict)
    points: pd.DataFrame | None = None
    profiles: tuple[IsoFlopProfile, ...] = ()
    fit: FitResult | None = None
    n_bootstrap: int = 0  # resamples behind the intervals
    bootstrap: np.ndarray | None = None  # (K, 4): a, b, G, G_D per resample; in memory only, not in JSON
    source: str = ""  # what the envelope was built from, e.g. "loss curves of 12 runs"
    profile_fit: str | None = None  # Approach 2: how each profile was fitted (PROFILE_FITS)
    window: int | None = None  # Approach 2 with profile_fit "window": sizes per local parabola

    @property
    def optimal(self) -> ComputeOptimal:
        """N_opt(C), D_opt(C), tokens per parameter and D_opt(N) of this allocation."""
        return ComputeOptimal(self.a, self.b, self.G)

    def N_opt(self, C: float | np.ndarray) -> np.ndarray:
        """Compute-optimal parameters for C FLOPs."""
        return self.optimal.N_opt(C)

    def D_opt(self, C: float | np.ndarray) -> np.ndarray:
        """Compute-optimal tokens for C FLOPs."""
        return self.optimal.D_opt(C)

    def to_json(self) -> dict[str, Any]:
        key = _budget_key
        return {
            "format": FORMAT,
            "approach": self.approach,
            "a": self.a,
            "b": self.b,
            "G": self.G,
            "G_D": self.G_D,
            "ci": {k: [lo, hi] for k, (lo, hi) in self.ci.items()},
            "tokens_per_param": {key(c): r for c, r in self.tokens_per_param.items()},
            "tokens_per_param_ci": {key(c): [lo, hi] for c, (lo, hi) in self.tokens_per_param_ci.items()},
            "budgets": dict(self.budgets),
            "source": self.source,
            "points": None if self.points is None else self.points.to_dict(orient="records"),
            "profile_fit": self.profile_fit,
            "window": self.window,
            "profiles": [p.to_json() for p in self.profiles],
            "fit": None if self.fit is None else {**self.fit.to_json(), "bootstrap_params": None},
            "n_bootstrap": self.n_bootstrap,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Allocation:
        """Inverse of `to_json` (without the bootstrap samples); UsageError when `obj` is no allocation."""
        obj = check_format(obj, FORMAT, "an allocation (`scaling allocate --json`)")
        budgets = {str(k): float(C) for k, C in obj["budgets"].items()}
        ratio, ratio_ci = obj["tokens_per_param"], obj["tokens_per_param_ci"]
        return cls(
            approach=int(obj["approach"]),
            a=float(obj["a"]),
            b=float(obj["b"]),
            G=float(obj["G"]),
            G_D=float(obj["G_D"]),
            ci={k: (float(lo), float(hi)) for k, (lo, hi) in obj["ci"].items()},
            budgets=budgets,
            tokens_per_param={C: float(ratio[_budget_key(C)]) for C in budgets.values()},
            tokens_per_param_ci={
                C: (float(ratio_ci[_budget_key(C)][0]), float(ratio_ci[_budget_key(C)][1]))
                for C in budgets.values()
                if _budget_key(C) in ratio_ci
            },
            points=None if obj["points"] is None else pd.DataFrame.from_records(obj["points"]),
            profiles=tuple(IsoFlopProfile.from_json(p) for p in obj["profiles"]),
            fit=None if obj["fit"] is None else FitResult.from_json(obj["fit"]),
            n_bootstrap=int(obj["n_bootstrap"]),
            source=str(obj["source"]),
            profile_fit=obj["profile_fit"],
            window=obj["window"],
        )

    def __repr__(self) -> str:
        return (
            f"Allocation(approach={self.approach}, a={self.a:.4g}, b={self.b:.4g}, G={self.G:.4g}, "
            f"n_bootstrap={self.n_bootstrap}, budgets={len(self.budgets)}, source={self.source!r})"
        )

    def describe(self) -> str:
        """A readable summary with units."""
        name = {1: "lowest-loss envelope", 2: "IsoFLOP profiles", 3: "parametric fit (closed form)"}
        lines = [f"Approach {self.approach} ({name[self.approach]}); {self.source}"]
        lines.append(
            f"  N_opt = {self.G:.4g} (C/6)^a params,  D_opt = {self.G_D:.4g} (C/6)^b tokens,  C in FLOPs"
        )
        for k in ("a", "b"):
            ci = self.ci.get(k)
            shown = f"   95 % CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
            lines.append(f"  {k} = {getattr(self, k):.4f}{shown}")
        lines.append(
            f"  {'budget':<40s} {'C (FLOPs)':>11s}  {'N_opt (params)':>14s}  {'D_opt (tokens)':>14s}  "
            "tokens/param"
        )
        for label, C in self.budgets.items():
            ratio = self.tokens_per_param[C]
            ci = self.tokens_per_param_ci.get(C)
            shown = f"  [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
            lines.append(
                f"  {label:<40s} {C:11.3g}  {format_quantity(float(self.N_opt(C))):>14s}  "
                f"{format_quantity(float(self.D_opt(C))):>14s}  {ratio:11.3g}{shown}"
            )
        return "\n".join(lines)


def _budget_key(C: float) -> str:
    return f"{C:.4g}"


# ---- power laws through points ---------------------------------------------------------------------
def _power_laws(C: np.ndarray, N: np.ndarray, D: np.ndarray) -> tuple[float, float, float, float] | None:
    """Least-squares lines of log N and log D against log(C/6): (a, b, G, G_D); None if degenerate."""
    x = np.log(C / FLOPS_PER_PARAM_TOKEN)
    if np.unique(x).size < 2:
        return None
    a, log_g = np.polyfit(x, np.log(N), 1)
    b, log_gd = np.polyfit(x, np.log(D), 1)
    if max(abs(log_g), abs(log_gd)) > 700:  # e.g. a resampled profile whose parabola is all but flat
        return None
    return float(a), float(b), math.exp(log_g), math.exp(log_gd)


# ---- Approach 1 ------------------------------------------------------------------------------------
def _envelope_points(table: pd.DataFrame, use_curves: bool) -> tuple[pd.DataFrame, str]:
    """All (C, loss) points of every run with its N: curve points where the run has a learning curve
    (its folder's metrics.jsonl or a tracker's history), plus every run's final point; column `row` is the
    run's row in `table`."""
    parts = [
        pd.DataFrame({"C": table["C"], "loss": table["loss"], "N": table["N"], "row": np.arange(len(table))})
    ]
    with_curves = 0
    if use_curves and "run" in table:
        for i, run in enumerate(table["run"].astype(str)):
            curve = curve_of(table, run)
            if curve is None or not {"flops", "val_loss"} <= set(curve.columns):
                continue
            curve = curve[["flops", "val_loss"]].apply(pd.to_numeric, errors="coerce").dropna()
            curve = curve[(curve["flops"] > 0) & (curve["val_loss"] > 0)]
            if curve.empty:
                continue
            with_curves += 1
            parts.append(
                pd.DataFrame(
                    {
                        "C": curve["flops"].to_numpy(),
                        "loss": curve["val_loss"].to_numpy(),
                        "N": table["N"].iloc[i],
                        "row": i,
                    }
                )
            )
    points = pd.concat(parts, ignore_index=True)
    source = (
        f"loss curves of {count(with_curves, 'run')} + final points of {len(table)}"
        if with_curves
        else (f"final points of {len(table)} runs (no loss curves found)")
    )
    return points, source


def _approach1(points: pd.DataFrame, rows: np.ndarray | None = None):
    if rows is not None:
        points = points[np.isin(points["row"].to_numpy(), np.unique(rows))]
    frontier = compute_frontier(points)
    frontier = frontier.assign(D=tokens_for_compute(frontier["C"], frontier["N"]))
    if np.unique(frontier["N"]).size < 2:
        return None, frontier
    return _power_laws(frontier["C"].to_numpy(), frontier["N"].to_numpy(), frontier["D"].to_numpy()), frontier


# ---- Approach 2 ------------------------------------------------------------------------------------
def isoflop_groups(table: pd.DataFrame, tolerance: float = ISOFLOP_TOLERANCE) -> list[np.ndarray]:
    """Row indices of runs whose compute lies within `tolerance` (relative) of the group's smallest."""
    return value_groups(table["C"].to_numpy(), tolerance)


def _mean_log_loss(N: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sizes (ascending) and the mean ln loss of the runs at each (several seeds, or a resample)."""
    sizes, index = np.unique(N, return_inverse=True)
    return sizes, np.bincount(index, np.log(loss)) / np.bincount(index)


def _akima_minimum(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(x, y) at the lowest point of the Akima interpolant through (x, y), x ascending: at a root of its
    derivative or at an end."""
    spline = Akima1DInterpolator(x, y)
    critical = spline.derivative().roots(extrapolate=False)
    candidates = np.concatenate([x[[0, -1]], critical[np.isfinite(critical)]])
    values = spline(candidates)
    best = int(np.argmin(values))
    return float(candidates[best]), float(values[best])


def _profile(
    C: np.ndarray, N: np.ndarray, loss: np.ndarray, method: str, window: int
) -> IsoFlopProfile | None:
    """One budget's profile fitted by `method`; None when it has fewer than MIN_PROFILE_SIZES sizes."""
    sizes, log_loss = _mean_log_loss(N, loss)
    if sizes.size < MIN_PROFILE_SIZES:
        return None
    budget = float(np.exp(np.log(C).mean()))
    lowest = int(np.argmin(log_loss))
    if method == "window":
        # the `window` sizes nearest (in ln N) the size of lowest observed loss
        nearest = np.argsort(np.abs(np.log(sizes) - np.log(sizes[lowest])), kind="stable")[:window]
        used = np.isin(N, sizes[nearest])
    else:
        used = np.ones(N.size, dtype=bool)
    x_used = np.log(N[used])
    coef, left_out = None, ""
    if method == "akima":
        x_opt, log_opt = _akima_minimum(np.log(sizes), log_loss)
        loss_opt = math.exp(log_opt)
    else:
        c2, c1, c0 = np.polyfit(x_used, loss[used], 2)
        coef = (float(c0), float(c1), float(c2))
        x_opt = -c1 / (2 * c2) if c2 > 0 else math.nan
        loss_opt = float(c0 - c1 * c1 / (4 * c2)) if c2 > 0 else math.nan
    if lowest in (0, sizes.size - 1):
        left_out = f"lowest loss at the {'smallest' if lowest == 0 else 'largest'} size tried"
    elif math.isnan(x_opt):  # a parabola opening downwards has no minimum
        left_out = "the fitted profile has no minimum (not convex)"
    elif not x_used.min() < x_opt < x_used.max():
        left_out = "fitted minimum outside the sizes it was fitted on"
    n_opt = math.exp(x_opt) if not left_out else math.nan
    return IsoFlopProfile(
        C=budget,
        N=N,
        loss=loss,
        used=used,
        method=method,
        window=window if method == "window" else None,
        coef=coef,
        N_opt=n_opt,
        D_opt=tokens_for_compute(budget, n_opt),
        loss_opt=loss_opt if not left_out else math.nan,
        left_out=left_out,
    )


def _approach2(
    table: pd.DataFrame,
    groups: list[np.ndarray],
    method: str,
    window: int,
    rng: np.random.Generator | None = None,
):
    """The profile of each of `groups` (None where it has too few sizes; runs resampled within each
    group when `rng` is given) and the power laws through the minima not left out (None with < 2)."""
    C, N, loss = (table[k].to_numpy(float) for k in ("C", "N", "loss"))
    profiles = []
    for rows in groups:
        if rng is not None:
            rows = rng.choice(rows, size=rows.size, replace=True)
        profiles.append(_profile(C[rows], N[rows], loss[rows], method, window))
    kept = [p for p in profiles if p is not None and not p.left_out]
    if len(kept) < 2:
        return None, profiles
    laws = _power_laws(*(np.array([getattr(p, k) for p in kept]) for k in ("C", "N_opt", "D_opt")))
    return laws, profiles


def describe_profile_fit(method: str, window: int) -> str:
    """How each IsoFLOP profile is fitted, in words."""
    return {
        "window": f"parabola in ln N through the {window} sizes nearest each profile's lowest loss",
        "akima": "minimum of an Akima interpolant of ln loss in ln N (Porian et al. 2024)",
        "parabola": "parabola in ln N through every size of each profile",
    }[method]


# ---- driver ----------------------------------------------------------------------------------------
# Approach 2's options; `scaling.report` checks them too, before it computes anything.
PROFILE_OPTIONS = {
    "isoflop_tolerance": Constraint(lambda v: 0 <= v < 1, "must be a fraction in [0, 1)"),
    "profile_fit": one_of(PROFILE_FITS),
    "window": whole_number(
        MIN_PROFILE_SIZES,
        f"must be a whole number of at least {MIN_PROFILE_SIZES} sizes (a parabola needs 3)",
    ),
}


def check_profile_options(isoflop_tolerance: float, profile_fit: str, window: int) -> None:
    """UsageError naming the argument unless Approach 2's options are usable (see `allocate`)."""
    check_arguments(
        PROFILE_OPTIONS, isoflop_tolerance=isoflop_tolerance, profile_fit=profile_fit, window=window
    )


@single_threaded_blas
@checked(
    approach=one_of((1, 2, 3), "must be 1, 2 or 3", str),
    bootstrap=NON_NEGATIVE,
    seed=NON_NEGATIVE,  # numpy's generators take non-negative seeds only
    **PROFILE_OPTIONS,
)
def allocate(
    table: pd.DataFrame | str | Path,
    approach: int = 3,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    law: str = "chinchilla",
    fit_result: FitResult | None = None,
    budgets: Mapping[str, float] | None = None,
    use_curves: bool = True,
    isoflop_tolerance: float = ISOFLOP_TOLERANCE,
    profile_fit: str = "window",
    window: int = DEFAULT_WINDOW,
) -> Allocation:
    """Compute-optimal allocation of a run table (N params, D tokens, C FLOPs, loss nats/token).

    Parameters
    ----------
    approach : 1 (envelope), 2 (IsoFLOP profiles) or 3 (closed form from a fit of `law`).
    bootstrap : resamples for 95 % intervals of a, b and tokens per parameter (0: none).
    fit_result : Approach 3 uses this fit instead of fitting `law` (its bootstrap gives the intervals).
    budgets : {name: C FLOPs} at which to report tokens per parameter; default: the largest run of the
        data and NAMED_BUDGETS.
    use_curves : Approach 1 reads loss curves from the run folders when the table has them.
    isoflop_tolerance : Approach 2 groups runs whose compute differs by at most this fraction.
    profile_fit : Approach 2's fit of each profile: `window` (a parabola in ln N through the `window`
        distinct sizes nearest the lowest observed loss), `akima` (minimum of an Akima interpolant of
        ln loss in ln N) or `parabola` (through every size of the profile).
    window : sizes per local parabola (>= 3) for `profile_fit="window"`.
    """
    table = load_runs(table)
    design = Design.of(table)
    if approach == 2 and not design.identifies_allocation:
        raise UsageError(f"Approach 2: the compute-optimal allocation is {design.not_identified}")
    rng = np.random.default_rng(seed)
    samples: list[tuple[float, float, float, float]] = []
    points, profiles, fitted, source = None, (), None, ""
    if approach == 1:
        envelope, source = _envelope_points(table, use_curves)
        # loss curves add points of every D a run passed through; final points alone are the table's design
        used = Design.of(envelope.assign(D=tokens_for_compute(envelope["C"], envelope["N"])))
        if not used.identifies_allocation:
            raise UsageError(f"Approach 1: the compute-optimal allocation is {used.not_identified}")
        laws, points = _approach1(envelope)
        if laws is None:
            raise UsageError(
                "Approach 1 needs a compute-efficient frontier with at least 2 model sizes; "
                f"the frontier of these {len(table)} runs has {points['N'].nunique()}"
            )
        for _ in range(bootstrap):
            boot, _ = _approach1(envelope, rng.integers(0, len(table), len(table)))
            if boot is not None:
                samples.append(boot)
        points = points[["C", "N", "D", "loss"]]
    elif approach == 2:
        groups = isoflop_groups(table, isoflop_tolerance)
        laws, per_group = _approach2(table, groups, profile_fit, window)
        profiles = [p for p in per_group if p is not None]
        left_out = [p for p in profiles if p.left_out]
        if left_out:
            warnings.warn(
                "IsoFLOP budget(s) left out of Approach 2, not extrapolated: "
                + "; ".join(f"C = {p.C:.3g} FLOPs ({p.left_out})" for p in left_out)
                + "; widen the N range there",
                ScalingWarning,
                stacklevel=2,
            )
        kept = [p for p in profiles if not p.left_out]
        if laws is None:
            raise UsageError(
                "Approach 2 needs IsoFLOP profiles: at least 2 compute budgets, each with runs of equal C "
                f"(within {isoflop_tolerance:.0%}) at {MIN_PROFILE_SIZES} or more model sizes and a minimum "
                f"inside the sizes tried; found {len(kept)} usable among {len(groups)} budgets"
            )
        # Resample the runs within each budget kept, so that every resample has the same budgets.
        kept_groups = [
            rows for rows, p in zip(groups, per_group, strict=True) if p is not None and not p.left_out
        ]
        for _ in range(bootstrap):
            boot, _ = _approach2(table, kept_groups, profile_fit, window, rng)
            if boot is not None:
                samples.append(boot)
        points = pd.DataFrame(
            {
                k: [getattr(p, a) for p in kept]
                for k, a in (("C", "C"), ("N", "N_opt"), ("D", "D_opt"), ("loss", "loss_opt"))
            }
        )
        source = (
            f"{len(kept)} IsoFLOP profiles of {sum(len(p.N) for p in kept)} runs"
            + (f" ({len(left_out)} budget(s) left out: minimum at the edge)" if left_out else "")
            + f"; {describe_profile_fit(profile_fit, window)}"
        )
    else:
        if fit_result is None and not design.identifies_allocation:  # refused before a fit that would warn
            raise UsageError(f"Approach 3: the compute-optimal allocation is {design.not_identified}")
        fitted = fit_result if fit_result is not None else fit(table, law=law, bootstrap=bootstrap, seed=seed)
        if fitted.compute_optimal is None and fitted.identifies_allocation:
            raise UsageError(
                f"Approach 3 needs a law in N and D (chinchilla, kaplan_nd, data_constrained), "
                f"not {fitted.law}"
            )
        optimal = fitted.require_compute_optimal()
        laws = (optimal.a, optimal.b, optimal.G, 1.0 / optimal.G)
        for o in fitted.bootstrap_optimal.resamples() if fitted.bootstrap_optimal is not None else ():
            samples.append((o.a, o.b, o.G, 1.0 / o.G))
        source = f"law {fitted.law} fitted on {fitted.n_points} runs"
    a, b, G, G_D = laws
    budgets = (
        dict(budgets) if budgets is not None else {"largest run": float(table["C"].max()), **NAMED_BUDGETS}
    )
    ratio = {C: float(ComputeOptimal(a, b, G).tokens_per_param(C)) for C in budgets.values()}
    ci, ratio_ci, boot = {}, {}, None
    if samples:
        boot = np.array(samples)
        ci = interval_dict(boot, ("a", "b", "G", "G_D"))
        for C in budgets.values():
            values = ComputeOptimal(boot[:, 0], boot[:, 1], boot[:, 2]).tokens_per_param(C)
            ratio_ci[C] = interval_dict(values[:, None], ("r",))["r"]
    if bootstrap and approach != 3 and len(samples) < bootstrap:
        warnings.warn(
            f"{bootstrap - len(samples)} of {bootstrap} bootstrap resamples were degenerate and skipped",
            ScalingWarning,
            stacklevel=2,
        )
    return Allocation(
        approach=approach,
        a=a,
        b=b,
        G=G,
        G_D=G_D,
        ci=ci,
        budgets=budgets,
        tokens_per_param=ratio,
        tokens_per_param_ci=ratio_ci,
        points=points,
        profiles=tuple(profiles),
        fit=fitted,
        n_bootstrap=len(samples),
        bootstrap=boot,
        source=source,
        profile_fit=profile_fit if approach == 2 else None,
        window=window if approach == 2 and profile_fit == "window" else None,
    )
