"""Overfitting and underfitting: label each run, from its own curves and from the fitted law.

Two views, both reported by `classify`:

*Curve view* (one run's `metrics.jsonl`): **overfitting** when the held-out loss rises from its minimum
by more than the evaluation noise (estimated from the curves: the larger of the run's own scatter and the
median over the runs labelled together), when the train/held-out gap grows
while the training loss falls (from the point where the held-out loss
stopped gaining at least half of what the training loss gains), or when the run repeated its data past
the point where repeats stop paying (more than R_D* repeats; Muennighoff et al. 2023: the R-th repeat of
a token is worth exp(-R / R_D*) of a fresh one, R_D* ~ 15.4); the step where it began is reported.
**underfitting** (undertrained) when the held-out loss still fell steeply over the last part of training.

*Law view* (the fitted L(N, D) over the (N, D) plane): a run of compute C = 6 N D is compared with the
compute-optimal allocation at the same C (Approach 3, the fit's closed form N_opt = G (C/6)^a,
D_opt = C/(6 N_opt)). **overfitting** (data-limited: model too large for its data) when D is more than
`band` times below D_opt(C), **underfitting** (capacity-limited: model too small for its data) when D is
more than `band` times above it, else **balanced**; with the loss lost against the optimal allocation at the
same compute. With a kaplan_nd fit, Kaplan et al.'s criterion also applies: overfitting when the penalty
(1 + (N/N_c)^(alpha_N/alpha_D) D_c/D)^alpha_D - 1 exceeds `kaplan_penalty` (Kaplan used 0.02). With unique
tokens U known, D counts by its effective size D' (Muennighoff et al.) and a run with more than
`max_repeats` repeats is overfitting whatever its tokens per parameter.

The combined `regime` is overfitting when either view finds it (a measured overfit outranks the law),
otherwise the law view's label, otherwise the curve view's. Units: N parameters, D tokens, C FLOPs,
loss nats/token.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import Constraint, ScalingWarning, UsageError, check_arguments
from scaling.fitting.design import NOT_IDENTIFIED, Design
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.io import check_format
from scaling.reference import training_flops
from scaling.runs.table import curve_of

FORMAT = "scaling.regimes/1"  # the "format" key of `Regimes.to_json`
OVERFITTING = "overfitting"
UNDERFITTING = "underfitting"
BALANCED = "balanced"

# Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", fitted half-life of repeated data.
MUENNIGHOFF_R_D_STAR = 15.4


@dataclass(frozen=True)
class Thresholds:
    """The documented knobs of both views (all options of `scaling regimes`).

    band: law view; D within a factor `band` of D_opt(C) is balanced. The default sqrt(10) ~ 3.16 is half
        a decade; at Chinchilla's fit a factor 3 off costs about 0.6-4 % of the loss (more at small
        compute), a factor 20 off 5-30 %.
    kaplan_penalty: Kaplan's overfitting threshold on L(N, D) / L(N, inf) - 1 (0.02 in Kaplan et al.).
    max_repeats: repeats D/U - 1 beyond which a run counts as overfitting; None = R_D* (the fit's, if it is
        a data_constrained fit, else Muennighoff's 15.4), where a repeated token is worth 1/e of a fresh one.
    rise: curve view; held-out loss this fraction above its minimum at the end = rising (0.01 = 1 %).
    gap: curve view; growth of held-out minus training loss, nats/token, that counts as a growing gap.
    noise_z: curve view; a rise or a gap growth must also exceed this many standard deviations of the
        evaluation noise (`evaluation_noise`), so that a flat curve's scatter is no onset
        (docs/planning.md, "Regimes and extrapolation").
    tail, steep: curve view; undertrained when the held-out loss fell by more than `steep` (fraction) over
        the last `tail` fraction of the tokens.
    """

    band: float = math.sqrt(10.0)
    kaplan_penalty: float = 0.02
    max_repeats: float | None = None
    rise: float = 0.01
    gap: float = 0.1
    noise_z: float = 3.0
    tail: float = 0.2
    steep: float = 0.02

    def __post_init__(self) -> None:
        check_arguments(_THRESHOLD_RULES, **asdict(self))


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


_THRESHOLD_RULES = {
    "band": Constraint(lambda v: math.isfinite(v) and v > 1, "must be a factor > 1"),
    **{k: Constraint(_positive, "must be positive") for k in ("kaplan_penalty", "rise", "gap", "noise_z")},
    "steep": Constraint(_positive, "must be positive"),
    "tail": Constraint(lambda v: 0 < v < 1, "must be a fraction in (0, 1)"),
    "max_repeats": Constraint(lambda v: v is None or _positive(v), "must be positive"),
}


# --------------------------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class CurveRegime:
    """What one run's learning curves say. Losses nats/token; onset is where overfitting began."""

    regime: str
    reason: str
    onset_step: int | None = None
    onset_tokens: float | None = None
    epochs: float | None = None  # D / U at the end of the curve
    min_val_loss: float | None = None
    final_val_loss: float | None = None
    final_train_loss: float | None = None
    eval_noise: float | None = None  # standard deviation of one evaluation's held-out loss, nats/token


def evaluation_noise(val_loss: np.ndarray) -> float:
    """Standard deviation (nats/token) of one evaluation's held-out loss about the run's smooth trend.

    From the second differences of successive evaluations: for a smooth curve they vanish and for
    independent noise of deviation sigma each has variance 6 sigma^2; their median absolute value (robust
    to the few large ones where the curve bends) / 0.6745 / sqrt(6) estimates sigma. A bending curve
    leaves some curvature in it, so the estimate errs high: towards fewer onsets, never false ones.
    0 with fewer than 3 evaluations.
    """
    second = np.diff(np.asarray(val_loss, dtype=float), 2)
    if not len(second):
        return 0.0
    return float(np.median(np.abs(second)) / 0.6745 / math.sqrt(6.0))


def _running_median(values: np.ndarray) -> np.ndarray:
    """Median of each evaluation and its two neighbours (the ends mirrored, so that an end point is not
    counted twice): one noisy low point is no minimum."""
    padded = np.pad(values, 1, mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 3), axis=1)


def analyze_curve(
    metrics: pd.DataFrame, unique_tokens: float | None = None, *, thresholds: Thresholds | None = None,
    r_d_star: float = MUENNIGHOFF_R_D_STAR, noise: float | None = None,
) -> CurveRegime:
    """Label one run from its evaluations (columns step, tokens, train_loss, val_loss of metrics.jsonl).

    unique_tokens: size U of the training split in tokens, to count epochs (None = unknown).
    r_d_star: R_D* used when `thresholds.max_repeats` is None.
    noise: evaluation noise (nats/token) estimated from other runs (`pooled_noise`); the curve's own
        estimate is used when larger, or alone when None. A few evaluations estimate their scatter
        poorly; the runs of a sweep together estimate it well.
    """
    t = thresholds or Thresholds()
    needed = {"step", "tokens", "train_loss", "val_loss"}
    missing = needed - set(metrics.columns)
    if missing:
        raise UsageError(f"metrics lack column(s) {', '.join(sorted(missing))}; expected metrics.jsonl")
    curve = metrics[list(needed)].apply(pd.to_numeric, errors="coerce")
    finite = np.isfinite(curve.to_numpy()).all(axis=1)
    if len(curve) and not finite[-1]:
        return CurveRegime("diverged", "the last evaluation has a non-finite loss")
    curve = curve[finite].sort_values("step").reset_index(drop=True)
    if len(curve) < 3:
        return CurveRegime(BALANCED, f"only {len(curve)} evaluation(s); too few to judge the curves")

    step = curve["step"].to_numpy()
    tokens = curve["tokens"].to_numpy(dtype=float)
    train = curve["train_loss"].to_numpy(dtype=float)
    val = curve["val_loss"].to_numpy(dtype=float)
    epochs = float(tokens[-1] / unique_tokens) if unique_tokens else None
    common = {
        "epochs": epochs,
        "min_val_loss": float(val.min()),
        "final_val_loss": float(val[-1]),
        "final_train_loss": float(train[-1]),
        "eval_noise": max(evaluation_noise(val), noise or 0.0),
    }
    noise_floor = t.noise_z * common["eval_noise"]  # nats/token a rise or a gap growth must exceed

    findings: list[tuple[int, str]] = []  # (evaluation index where it began, why)
    # Held-out loss rises: the minimum of the running median of three and the end's median of the last
    # three, so one noisy evaluation neither makes nor hides a rise; the rise must exceed both `rise` and
    # the noise floor, since the lowest of many noisy evaluations always lies below the end.
    smooth = _running_median(val)
    i_min = int(np.argmin(smooth))
    end_level = float(np.median(val[-3:]))
    rise = end_level - smooth[i_min]
    if i_min < len(val) - 1 and rise > max(t.rise * smooth[i_min], noise_floor):
        findings.append((i_min, (
            f"held-out loss rose from its minimum {smooth[i_min]:.4g} at step {step[i_min]} to "
            f"{end_level:.4g} nats/token at the end (> {t.rise:.0%} above and > {t.noise_z:g} x the "
            f"evaluation noise {common['eval_noise']:.2g})"
        )))
    # Growing gap. The logged training loss is a mean over the steps since the previous evaluation, so
    # it is compared with the held-out loss averaged over the same interval (mean of its two ends).
    # While both learn, val - train/2 falls (held-out gains at least half of what training gains); it
    # turns up where held-out stops following: the onset, when from there the gap grew by more than
    # `gap` while training loss fell.
    val_mid = np.r_[np.nan, (val[1:] + val[:-1]) / 2]
    i_turn = 1 + int(np.argmin((val_mid - 0.5 * train)[1:]))
    growth = (val_mid[-1] - train[-1]) - (val_mid[i_turn] - train[i_turn])
    train_gain, val_gain = train[i_turn] - train[-1], val_mid[i_turn] - val_mid[-1]
    if growth > max(t.gap, noise_floor) and train_gain > 0:
        findings.append((i_turn, (
            f"train/held-out gap grew by {growth:.3g} nats/token from step {step[i_turn]} while training "
            f"loss fell {train_gain:.3g} and held-out loss {val_gain:.3g}"
        )))
    # Repeats beyond the point where they stop paying.
    if unique_tokens:
        max_repeats = t.max_repeats if t.max_repeats is not None else r_d_star
        past = np.nonzero(tokens / unique_tokens - 1 > max_repeats)[0]
        if len(past):
            findings.append((int(past[0]), (
                f"repeated its {unique_tokens:.3g} unique tokens {epochs:.3g} times, past "
                f"{max_repeats:.3g} repeats (from step {step[past[0]]})"
            )))
    if findings:
        first = min(index for index, _ in findings)
        return CurveRegime(
            OVERFITTING, "; ".join(why for _, why in findings),
            onset_step=int(step[first]), onset_tokens=float(tokens[first]), **common,
        )

    # Still falling steeply: loss drop over the last `tail` of the tokens.
    start = int(np.searchsorted(tokens, (1 - t.tail) * tokens[-1]))
    start = min(start, len(val) - 2)
    drop = (val[start] - val[-1]) / val[-1]
    if drop > t.steep:
        return CurveRegime(UNDERFITTING, (
            f"held-out loss still fell {drop:.1%} over the last {1 - tokens[start] / tokens[-1]:.0%} of the "
            f"tokens (> {t.steep:.0%}): undertrained"
        ), **common)
    return CurveRegime(BALANCED, (
        f"held-out loss flattened (fell {drop:.1%} over the last {1 - tokens[start] / tokens[-1]:.0%} of "
        "the tokens) without rising or a growing gap"
    ), **common)


# ------------------------------------------------------------------------------------------------ law


def effective_tokens(D: float, U: float, r_d_star: float = MUENNIGHOFF_R_D_STAR) -> float:
    """Muennighoff et al.'s effective data D' = U + U R_D* (1 - exp(-R_D / R_D*)), R_D = D/U - 1 repeats."""
    # For a data_constrained fit, `law_regime` asks the law (which also shrinks N); this is the D part
    # alone, for a fit of a law without R_D*, with Muennighoff's published value.
    if D <= U:
        return float(D)
    return float(U * (1.0 + r_d_star * -math.expm1(-(D / U - 1.0) / r_d_star)))


def kaplan_overfit_penalty(params: Mapping[str, float], N: float, D: float) -> float:
    """Kaplan et al.'s L(N, D) / L(N, inf) - 1 = (1 + (N/N_c)^(alpha_N/alpha_D) D_c/D)^alpha_D - 1."""
    ratio = params["alpha_N"] / params["alpha_D"]
    return (1.0 + (N / params["N_c"]) ** ratio * params["D_c"] / D) ** params["alpha_D"] - 1.0


def law_loss(fit_result: FitResult, N: float, D: float, U: float | None = None) -> float:
    """The fitted loss (nats/token) at N params, D tokens (U unique tokens, used by data_constrained)."""
    U = U if "U" in get_law(fit_result.law).inputs else None
    return float(fit_result.predict(N=N, D=D, U=U).item())


def _r_d_star(fit_result: FitResult | None) -> float:
    if fit_result is not None and "R_D_star" in fit_result.params:
        return float(fit_result.params["R_D_star"])
    return MUENNIGHOFF_R_D_STAR


@dataclass(frozen=True)
class LawRegime:
    """What the fitted law says about one run (N params, D tokens, U unique tokens or None).

    data_ratio: D' / D_opt(C) (D' = D without repeats); loss_lost: nats/token above the loss of the
    compute-optimal allocation at the same C (None when the law has no such allocation).
    """

    regime: str
    reason: str
    tokens_per_param: float
    optimal_tokens_per_param: float | None = None
    data_ratio: float | None = None
    effective_tokens: float | None = None
    loss_lost: float | None = None
    kaplan_penalty: float | None = None
    repeats: float | None = None


def law_regime(
    fit_result: FitResult, N: float, D: float, U: float | None = None, *,
    thresholds: Thresholds | None = None,
) -> LawRegime:
    """Label a run of N parameters trained on D tokens (U unique) against a fitted law (a FitResult)."""
    t = thresholds or Thresholds()
    C = training_flops(N, D)
    tpp = D / N
    has_u = U is not None and math.isfinite(U) and U > 0
    r_d_star = _r_d_star(fit_result)
    d_eff = D
    if has_u and fit_result.law == "data_constrained":
        d_eff = float(get_law("data_constrained").effective_sizes(fit_result.params, N, D, U)[1].item())
    elif has_u:
        d_eff = effective_tokens(D, U, r_d_star)
    repeats = max(D / U - 1.0, 0.0) if has_u else None
    found: dict[str, Any] = {"tokens_per_param": tpp, "effective_tokens": d_eff if has_u else None,
                             "repeats": repeats}
    verdicts: list[tuple[str, str]] = []

    optimal = fit_result.compute_optimal
    if optimal is not None:
        n_opt, d_opt = float(optimal.N_opt(C)), float(optimal.D_opt(C))
        ratio = d_eff / d_opt
        loss = law_loss(fit_result, N, D, U if has_u else D)
        best = law_loss(fit_result, n_opt, d_opt, d_opt)
        found.update(optimal_tokens_per_param=d_opt / n_opt, data_ratio=ratio, loss_lost=loss - best)
        data = f"{d_eff:.3g} effective tokens" if d_eff != D else f"{D:.3g} tokens"
        where = (
            f"{data} = {ratio:.3g} x D_opt at C = {C:.3g} FLOPs ({tpp:.3g} tokens/param vs optimal "
            f"{d_opt / n_opt:.3g}); loses {loss - best:.3g} nats/token vs N_opt = {n_opt:.3g}"
        )
        if ratio < 1.0 / t.band:
            verdicts.append((OVERFITTING, f"data-limited: {where}"))
        elif ratio > t.band:
            verdicts.append((UNDERFITTING, f"capacity-limited: {where}"))
        else:
            verdicts.append((BALANCED, f"within a factor {t.band:.3g} of optimal: {where}"))
    if fit_result.law == "kaplan_nd":
        penalty = kaplan_overfit_penalty(fit_result.params, N, D)
        found["kaplan_penalty"] = penalty
        if penalty > t.kaplan_penalty:
            verdicts.insert(0, (OVERFITTING, (
                f"Kaplan's criterion: L(N, D) is {penalty:.1%} above L(N, inf) (> {t.kaplan_penalty:.0%})"
            )))
    if repeats is not None:
        max_repeats = t.max_repeats if t.max_repeats is not None else r_d_star
        if repeats > max_repeats:
            verdicts.insert(0, (OVERFITTING, (
                f"{D / U:.3g} epochs over {U:.3g} unique tokens: {repeats:.3g} repeats, "
                f"past {max_repeats:.3g}"
            )))
    if not verdicts:
        raise UsageError(
            f"a {fit_result.law} fit has no compute-optimal allocation to compare runs with; "
            "fit a law in N and D (chinchilla, kaplan_nd, data_constrained)"
        )
    regime = verdicts[0][0]
    reason = "; ".join(why for label, why in verdicts if label == regime)
    return LawRegime(regime=regime, reason=reason, **found)


# ------------------------------------------------------------------------------------------- combined


def pooled_noise(curves: list[pd.DataFrame]) -> float:
    """The median `evaluation_noise` (nats/token) over the learning curves (metrics frames with val_loss)
    that have at least 5 evaluations; 0 when none has."""
    values = []
    for metrics in curves:
        val = pd.to_numeric(metrics.get("val_loss", pd.Series(dtype=float)), errors="coerce").to_numpy(float)
        val = val[np.isfinite(val)]
        if len(val) >= 5:
            values.append(evaluation_noise(val))
    return float(np.median(values)) if values else 0.0


def _metrics_of(table: pd.DataFrame, row: pd.Series) -> pd.DataFrame | None:
    """The run's learning curve: its folder's metrics.jsonl or a tracker's history (None without one)."""
    run = row.get("run")
    if not isinstance(run, str | Path):
        return None
    try:
        return curve_of(table, str(run))
    except UsageError as exc:  # name the run: a sweep has many metrics.jsonl
        raise UsageError(f"{run}: {exc}") from None


def _curve_for_row(
    row: pd.Series, metrics: pd.DataFrame, thresholds: Thresholds, r_d_star: float, noise: float
) -> CurveRegime:
    U = row.get("U")
    unique = float(U) if U is not None and np.isfinite(U) and U > 0 else None
    try:
        return analyze_curve(metrics, unique, thresholds=thresholds, r_d_star=r_d_star, noise=noise)
    except UsageError as exc:  # name the run: a sweep has many curves
        raise UsageError(f"{row['run']}: {exc}") from None


@dataclass(frozen=True)
class Regimes:
    """The labels of a run table (`classify`): one row per run in the table's order, with columns N, D,
    C (+ U, run), regime, reason, law_* (law view), curve_* and onset_step / onset_tokens (curve view);
    the thresholds they were judged by, and the fit that gave the law view (None: curve view only).

    JSON (`to_json`, the `scaling regimes --json` document) keeps the fit's law, parameters and
    compute-optimal allocation only, so `from_json` gives back a fit of those alone."""

    labels: pd.DataFrame
    thresholds: Thresholds = field(default_factory=Thresholds)
    fit: FitResult | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Runs per regime, the most frequent first."""
        return {str(k): int(n) for k, n in self.labels["regime"].value_counts().items()}

    def to_json(self) -> dict[str, Any]:
        """{"format", "runs": [...] in row order (NaN -> left out), "thresholds", "law" (with a fit)}."""
        runs = [
            {k: _plain(v) for k, v in record.items() if not _missing(v)}
            for record in self.labels.to_dict(orient="records")
        ]
        doc: dict[str, Any] = {"format": FORMAT, "runs": runs, "thresholds": asdict(self.thresholds)}
        if self.fit is not None:
            optimal = self.fit.compute_optimal
            doc["law"] = {"law": self.fit.law, "params": dict(self.fit.params),
                          "compute_optimal": None if optimal is None else optimal.to_json()}
        return doc

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Regimes:
        """Inverse of `to_json`; UsageError when `obj` is no regimes document."""
        obj = check_format(obj, FORMAT, "a regimes document (`scaling regimes --json`)")
        return cls(
            labels=pd.DataFrame.from_records(obj["runs"]),
            thresholds=Thresholds(**obj["thresholds"]),
            fit=FitResult.from_json(obj["law"]) if obj.get("law") is not None else None,
        )

    def describe(self) -> str:
        """One block per run: the combined label, then each view's reason; then the counts."""
        if self.fit is None:
            head = "law view: none (no law fitted: too few runs, or runs that do not identify it)"
        else:
            params = ", ".join(f"{k} {v:.4g}" for k, v in self.fit.params.items())
            head = f"law view: {self.fit.law} fit ({params})"
            if not self.fit.identifies_allocation:
                head = f"law view: none, {self.fit.design.not_identified}"
        lines = [head]
        for i, row in enumerate(self.labels.to_dict(orient="records"), start=1):
            name = row.get("run", f"row {i}")
            lines.append(
                f"{name}: {row['regime'].upper()}  N {row['N']:.3g} params, D {row['D']:.3g} tokens "
                f"({row['D'] / row['N']:.3g} tokens/param)"
            )
            for view in ("law", "curve"):
                reason = row.get(f"{view}_reason")
                if isinstance(reason, str):
                    lines.append(f"    {view:5s} {row[f'{view}_regime']}: {reason}")
            onset = row.get("onset_step")
            if onset is not None and not _missing(onset):
                lines.append(f"    overfitting began at step {int(onset)} ({row['onset_tokens']:.3g} tokens)")
        lines.append("total: " + ", ".join(f"{n} {label}" for label, n in self.counts.items()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        law = "none" if self.fit is None else self.fit.law
        return f"Regimes(runs={len(self.labels)}, counts={self.counts}, law={law})"


def classify(
    table: pd.DataFrame, fit_result: FitResult | None = None, *, thresholds: Thresholds | None = None,
    law: str | None = "chinchilla", curves: bool = True,
) -> Regimes:
    """Label every run of a run table (columns N, D, C, loss, optional U and run folder `run`).

    fit_result: a FitResult whose law gives the law view; None fits `law` to `table` (when it holds
    enough runs; otherwise only the curve view is given, with a warning); with law None as well, there
    is no law view. curves: also read each run's metrics.jsonl (column `run`) for the curve view.
    Returns the labels, one row per run in `table`'s order (`Regimes`).
    """
    t = thresholds or Thresholds()
    for column in ("N", "D"):
        if column not in table.columns:
            raise UsageError(f"run table lacks column {column}; give N and D (or C) per run")
    if fit_result is None and law is not None:
        fit_result = fit_if_possible(table, law)
    r_d_star = _r_d_star(fit_result)
    law_fit, no_law = fit_result, "no fitted law"
    if fit_result is not None and not fit_result.identifies_allocation:
        # the law's D_opt(C) is what the law view compares with, and these runs do not determine it
        law_fit, no_law = None, f"law view {fit_result.design.not_identified}"
    metrics = {i: _metrics_of(table, row) for i, row in table.iterrows()} if curves else {}
    noise = pooled_noise([m for m in metrics.values() if m is not None])

    rows = []
    for i, row in table.iterrows():
        N, D = float(row["N"]), float(row["D"])
        U = float(row["U"]) if "U" in row and pd.notna(row["U"]) else None
        out: dict[str, Any] = {"N": N, "D": D, "C": training_flops(N, D)}
        if U is not None:
            out["U"] = U
        if "run" in row and pd.notna(row["run"]):
            out["run"] = str(row["run"])
        found = metrics.get(i)
        curve = _curve_for_row(row, found, t, r_d_star, noise) if found is not None else None
        by_law = law_regime(law_fit, N, D, U, thresholds=t) if law_fit is not None else None
        if curve is not None:
            out.update(_prefixed(asdict(curve), "curve_"))
        if by_law is not None:
            out.update(_prefixed(asdict(by_law), "law_"))
        if curve is not None and (curve.regime in (OVERFITTING, "diverged") or by_law is None):
            out["regime"], out["reason"] = curve.regime, f"curves: {curve.reason}"
        elif by_law is not None:
            out["regime"], out["reason"] = by_law.regime, f"law: {by_law.reason}"
        else:
            out["regime"], out["reason"] = "unknown", f"{no_law} and no learning curves for this run"
        rows.append(out)
    return Regimes(pd.DataFrame(rows, index=table.index), t, fit_result)


def fit_if_possible(table: pd.DataFrame, law: str = "chinchilla") -> FitResult | None:
    """Fit `law` to the runs, or warn and return None when they are too few for it or do not identify it."""
    needed = len(get_law(law).param_names) + 1
    if len(table) < needed:
        warnings.warn(
            f"{len(table)} run(s) are too few to fit the {law} law (needs {needed}); curve view only",
            ScalingWarning, stacklevel=3,
        )
        return None
    design = Design.of(table)
    if design.status(law) == NOT_IDENTIFIED:
        warnings.warn(f"law {law} is not identified by these runs ({design.words}); curve view only",
                      ScalingWarning, stacklevel=3)
        return None
    result = fit(table, law=law)
    if not result.converged:
        warnings.warn(f"the {law} fit did not converge; read the law view with care", ScalingWarning,
                      stacklevel=3)
    return result


def _prefixed(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Prefix the two fields both views share (regime, reason); the others are unique to their view."""
    return {prefix + k if k in ("regime", "reason") else k: v for k, v in fields.items()}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
