"""Extrapolation: the loss a fitted law predicts at any N, D (or C, or the compute-optimal point), with its
95 % intervals (of the mean law and of one run's loss, `scaling.fitting.intervals`), and the budget of that
run (FLOPs, PF-days, GPU-days, memory).

Units: N non-embedding parameters, D tokens, C = 6 N D FLOPs, loss nats/token, memory decimal GB.

A fit on all parameters (`params_column="N_total"`) is evaluated at the target's N_total: given, or counted
from its shape (the preset, else the GPT-3-like shape `shape_for_params` picks, vocabulary 50257, context
2048: N_total = N + (vocab + context) d_model).

"Compute-optimal" uses the fit's Approach-3 closed form N_opt(C) = G (C/6)^a (`scaling.fitting.optimal`): for
a given C it is (N_opt(C), C / (6 N_opt)); for a given N it is the D that makes N optimal,
D_opt(N) = (N/G)^(1/a) / N.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from scaling import hardware
from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.intervals import loss_intervals, percentile_interval
from scaling.fitting.laws import get_law
from scaling.fitting.result import FitResult
from scaling.io import check_format
from scaling.reference import tokens_for_compute, training_flops
from scaling.shapes import GPT3_CONTEXT_AND_VOCAB, PRESETS, Shape, n_params, n_params_total, shape_for_params
from scaling.study.regimes import Thresholds, law_loss, law_regime
from scaling.units import format_quantity, parse_quantity

FORMAT = "scaling.prediction/1"  # the "format" key of `Prediction.to_json`
# Beyond these a request is not an extrapolation but a typo: ~5,000x GPT-3's size, ~100x all public text.
MAX_PARAMS = 1e15
MAX_TOKENS = 1e16
# A prediction this many times beyond the fitted range (in N or C) gets a warning.
LONG_EXTRAPOLATION = 10.0
# A number within this fraction of a GPT-3 preset's N (or total parameters) is taken to be that preset.
PRESET_MATCH = 0.02


@dataclass(frozen=True)
class Prediction:
    """A predicted run: loss (nats/token) with its 95 % interval and the run's budget.

    N params, D tokens, C = 6 N D FLOPs; flops_with_attention adds the attention-score FLOPs of `shape`;
    pf_days in petaFLOP/s-days; gpu_days on one `accelerator` at model FLOPs utilisation `mfu`;
    memory in GB of the parameters counted by `memory_params` (total parameters for a named preset, else N).
    extrapolation: how many times N and C exceed the largest fitted N and C (None: the fit lacks its range).
    """

    law: str
    mode: str  # "tokens", "compute", "optimal_for_params" or "optimal_for_compute"
    N: float
    D: float
    C: float
    loss: float
    loss_ci: tuple[float, float] | None  # 95 % interval of the mean law (bootstrap of the fit)
    loss_pi: tuple[float, float] | None  # 95 % prediction interval of one run's loss (adds run noise)
    D_ci: tuple[float, float] | None  # compute-optimal D across the bootstrap fits (optimal modes)
    regime: str | None
    regime_reason: str | None
    tokens_per_param: float
    optimal_tokens_per_param: float | None
    pf_days: float
    flops_with_attention: float | None
    memory_params: float
    memory: hardware.Memory
    accelerator: str
    mfu: float
    gpu_days: float
    shape: dict[str, Any] | None
    extrapolation: dict[str, float] | None
    params_column: str = "N"  # the count the law read: "N" or "N_total" (then at N_law = N_total)
    N_law: float | None = None
    interval_note: str | None = None  # why loss_ci or loss_pi is missing, when the fit has a bootstrap

    def to_json(self) -> dict[str, Any]:
        """The format, DESIGN's keys (N, D, C, loss, loss_ci, regime, pf_days, memory_gb), then the rest."""
        return {
            "format": FORMAT,
            "N": self.N,
            "D": self.D,
            "C": self.C,
            "loss": self.loss,
            "loss_ci": list(self.loss_ci) if self.loss_ci else None,
            "regime": self.regime,
            "pf_days": self.pf_days,
            "memory_gb": self.memory.to_json(),
            "law": self.law,
            "mode": self.mode,
            "regime_reason": self.regime_reason,
            "D_ci": list(self.D_ci) if self.D_ci else None,
            "tokens_per_param": self.tokens_per_param,
            "optimal_tokens_per_param": self.optimal_tokens_per_param,
            "flops_with_attention": self.flops_with_attention,
            "memory_params": self.memory_params,
            "gpu": self.accelerator,
            "mfu": self.mfu,
            "gpu_days": self.gpu_days,
            "shape": self.shape,
            "extrapolation": self.extrapolation,
            "loss_pi": list(self.loss_pi) if self.loss_pi else None,
            "params_column": self.params_column,
            "N_law": self.N_law,
            "interval_note": self.interval_note,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Prediction:
        """Inverse of `to_json`; UsageError when `obj` is no prediction."""
        obj = check_format(obj, FORMAT, "a prediction (`scaling predict --json`)")

        def pair(key: str) -> tuple[float, float] | None:
            return None if obj[key] is None else (float(obj[key][0]), float(obj[key][1]))

        return cls(
            law=str(obj["law"]),
            mode=str(obj["mode"]),
            N=float(obj["N"]),
            D=float(obj["D"]),
            C=float(obj["C"]),
            loss=float(obj["loss"]),
            loss_ci=pair("loss_ci"),
            loss_pi=pair("loss_pi"),
            interval_note=obj.get("interval_note"),
            D_ci=pair("D_ci"),
            regime=obj["regime"],
            regime_reason=obj["regime_reason"],
            tokens_per_param=float(obj["tokens_per_param"]),
            optimal_tokens_per_param=obj["optimal_tokens_per_param"],
            pf_days=float(obj["pf_days"]),
            flops_with_attention=obj["flops_with_attention"],
            memory_params=float(obj["memory_params"]),
            memory=hardware.Memory(**obj["memory_gb"]),
            accelerator=str(obj["gpu"]),
            mfu=float(obj["mfu"]),
            gpu_days=float(obj["gpu_days"]),
            shape=obj["shape"],
            extrapolation=obj["extrapolation"],
            params_column=str(obj["params_column"]),
            N_law=obj["N_law"],
        )

    def __repr__(self) -> str:
        return (
            f"Prediction(law={self.law!r}, mode={self.mode!r}, N={self.N:.4g}, D={self.D:.4g}, "
            f"C={self.C:.4g}, loss={self.loss:.4g}, regime={self.regime!r})"
        )

    def describe(self) -> str:
        """The lines `scaling predict` prints: every figure with its unit."""
        q = format_quantity
        preset = ""
        if self.shape and self.shape["preset"]:  # a number near a preset takes its shape, not its N
            name, exact = self.shape["preset"], n_params(PRESETS[self.shape["preset"]])
            same = exact == self.N
            preset = f" (preset {name})" if same else f" (shape of preset {name}, whose N is {q(exact)})"
        ratio = f"{self.tokens_per_param:.3g} tokens/param"
        if self.optimal_tokens_per_param:
            ratio += f"; compute-optimal at this C: {self.optimal_tokens_per_param:.3g}"
        loss_ci = f"  [95 % mean law: {self.loss_ci[0]:.4g}, {self.loss_ci[1]:.4g}]" if self.loss_ci else ""
        if self.loss_pi:
            loss_ci += f"  [95 % one run: {self.loss_pi[0]:.4g}, {self.loss_pi[1]:.4g}]"
        if self.interval_note and not (self.loss_ci and self.loss_pi):
            loss_ci += f"  ({'no other interval' if loss_ci else 'no interval'}: {self.interval_note})"
        d_ci = f"  [95 %: {q(self.D_ci[0])}, {q(self.D_ci[1])}]" if self.D_ci else ""
        attention = f"; {self.flops_with_attention:.3g} with attention" if self.flops_with_attention else ""
        regime = (
            f"{self.regime}: {self.regime_reason}" if self.regime
            else f"n/a ({self.regime_reason or 'the law has no allocation'})"
        )
        m = self.memory
        lines = [
            f"law       {self.law} ({self.mode.replace('_', ' ')})",
            f"N         {q(self.N)} parameters{preset}"
            + (f"; the law reads N_total = {q(self.N_law)}" if self.params_column == "N_total" else ""),
            f"D         {q(self.D)} tokens{d_ci}  ({ratio})",
            f"C         {self.C:.3g} FLOPs (6 N D){attention}",
            f"loss      {self.loss:.4g} nats/token"
            + (loss_ci or "  (no interval: the fit has no bootstrap)"),
            f"regime    {regime}",
            f"compute   {self.pf_days:.4g} PF-days = {self.gpu_days:.4g} GPU-days on {self.accelerator} "
            f"at {self.mfu:.0%} MFU",
            f"memory    weights {m.weights_fp32:.4g} GB fp32, {m.weights_bf16:.4g} GB bf16; mixed-precision "
            f"Adam training state (16 B/param) {m.training_mixed_adam:.4g} GB = {m.gpus_80gb} x 80 GB GPUs "
            f"({q(self.memory_params)} parameters; activations not included)",
        ]
        if self.extrapolation:
            factors = ", ".join(f"{k} {v:.3g}x" for k, v in self.extrapolation.items())
            lines.append(f"extrap.   {factors} the largest fitted run")
        return "\n".join(lines)


def resolve_params(value: str | float) -> tuple[float, Shape | None, str | None]:
    """'175B', 175e9 or a preset name ('gpt3_175b') -> (N, shape, preset name).

    A number within 2 % of a GPT-3 preset's N or total parameters is taken to be that preset (so 175B is
    GPT-3 175B, ctx 2048); other numbers get no shape here.
    """
    if isinstance(value, str) and value.strip() in PRESETS:
        name = value.strip()
        return float(n_params(PRESETS[name])), PRESETS[name], name
    N = parse_quantity(value, "N (parameters)")
    for name, shape in PRESETS.items():
        if name.startswith("gpt3_") and any(
            abs(N / count - 1) <= PRESET_MATCH for count in (n_params(shape), n_params_total(shape))
        ):
            return N, shape, name
    return N, None, None


def predict(
    fit_result: FitResult,
    N: float | str | None = None,
    D: float | str | None = None,
    C: float | str | None = None,
    *,
    optimal: bool = False,
    U: float | str | None = None,
    accelerator: str = hardware.DEFAULT_ACCELERATOR,
    mfu: float = hardware.DEFAULT_MFU,
    thresholds: Thresholds | None = None,
    data_range: Mapping[str, Sequence[float]] | None = None,
    params_total: float | str | None = None,
    allow_unconverged: bool = False,
) -> Prediction:
    """Predict the loss and budget of one run from a FitResult.

    Give N with D (tokens), N with C (D = C / 6N), N with optimal=True (D_opt(N)), or C with optimal=True
    (N_opt(C), D_opt(C)). N may be a preset name ('gpt3_175b'); quantities accept '175B', '300B', '3e23'.
    U: unique tokens, for a data_constrained fit (default: D, no repetition).
    data_range: {"N": [min, max], "C": [min, max]} of the runs the law was fitted on (`fitted_range`), to
        report how far the prediction extrapolates; default: the range the fit records, if any.
    params_total: the target's N_total (all parameters), for a fit on N_total; default: counted from its
        shape (see the module docstring).
    allow_unconverged: predict from a fit that did not converge (with a ScalingWarning); refused otherwise.
    Raises UsageError for a law that cannot answer (`optimal` from a law without an allocation, or one
    the runs did not identify), non-positive or absurd inputs; warns (ScalingWarning) when N or C lies
    more than 10x beyond the fitted range.
    """
    law = get_law(fit_result.law)
    shape = preset = None
    named_preset = isinstance(N, str) and N.strip() in PRESETS
    if N is not None:
        N, shape, preset = resolve_params(N)
    D = None if D is None else parse_quantity(D, "D (tokens)")
    C = None if C is None else parse_quantity(C, "C (FLOPs)")
    U = None if U is None else parse_quantity(U, "U (unique tokens)")

    if not fit_result.converged:
        if not allow_unconverged:
            raise UsageError(
                f"the {fit_result.law} fit did NOT converge (not a stationary point of its objective); "
                "refit, or give `allow_unconverged` to predict from it anyway"
            )
        warnings.warn(
            f"predicting from a {fit_result.law} fit that did NOT converge: treat the numbers with care",
            ScalingWarning, stacklevel=2,
        )
    co = fit_result.require_compute_optimal() if optimal else fit_result.compute_optimal
    given = [f"`{name}`" for name, value in (("D", D), ("C", C), ("optimal", optimal)) if value]
    if N is not None and len(given) == 1:
        N_law = _law_params(fit_result, N, shape, params_total)
        if optimal:
            mode, D = "optimal_for_params", float(co.D_opt_for_params(N_law))
        elif C is not None:
            mode, D = "compute", tokens_for_compute(C, N)
        else:
            mode = "tokens"
    elif N is None and optimal and C is not None and D is None:
        if fit_result.params_column == "N_total":
            raise UsageError("a fit on N_total allocates all parameters; give `N` with `optimal`")
        mode = "optimal_for_compute"
        N, D = float(co.N_opt(C)), float(co.D_opt(C))
    else:
        raise UsageError(
            "give `N` with exactly one of `D`, `C`, `optimal`; "
            f"or `C` with `optimal` (got `N` {'yes' if N is not None else 'no'}, "
            f"{', '.join(given) or 'nothing else'})"
        )
    check_sensible(N, D)
    C = training_flops(N, D)
    U = D if U is None else U
    if mode == "optimal_for_compute":
        N_law = N
    off = None if fit_result.design is None else fit_result.design.off_design(N_law, D)
    if off:  # a one-dimensional design determines the law along its line only
        raise UsageError(off)

    loss = law_loss(fit_result, N_law, D, U)
    if not math.isfinite(loss):
        raise UsageError(f"the {fit_result.law} fit gives a non-finite loss at N={N_law:.3g}, D={D:.3g}")
    d_ci = _optimal_d_interval(fit_result, mode, N_law, C)
    bands = loss_intervals(fit_result, N=N_law, D=D, U=U if "U" in law.inputs else None)
    loss_ci = _pair(bands.mean_lo, bands.mean_hi)
    loss_pi = _pair(bands.run_lo, bands.run_hi)
    data_range = data_range or fit_result.data_range
    extrapolation = _extrapolation(data_range, N_law, C) if data_range else None

    by_law = None
    no_regime = None if fit_result.identifies_allocation else "the runs behind the fit do not identify it"
    if co is not None:
        by_law = law_regime(fit_result, N_law, D, U if U < D else None, thresholds=thresholds)
    if shape is None and N >= 1000:
        shape = shape_for_params(N, **GPT3_CONTEXT_AND_VOCAB)  # an assumed GPT-3-like shape
    # A named preset's memory counts its embeddings too; a bare number is all we know otherwise.
    memory_params = float(n_params_total(shape)) if named_preset else N
    chip = hardware.get_accelerator(accelerator)
    return Prediction(
        law=fit_result.law,
        mode=mode,
        N=N,
        D=D,
        C=C,
        loss=loss,
        loss_ci=loss_ci,
        loss_pi=loss_pi,
        D_ci=d_ci,
        regime=by_law.regime if by_law else None,
        regime_reason=by_law.reason if by_law else no_regime,
        tokens_per_param=D / N,
        optimal_tokens_per_param=by_law.optimal_tokens_per_param if by_law else None,
        pf_days=hardware.pf_days(C),
        flops_with_attention=(
            hardware.training_flops_with_attention(N, D, shape.n_layer, shape.n_ctx, shape.d_model)
            if shape is not None else None
        ),
        memory_params=memory_params,
        memory=hardware.memory(memory_params),
        accelerator=chip.name,
        mfu=mfu,
        gpu_days=hardware.gpu_days(C, chip, mfu),
        shape={"preset": preset, "assumed": preset is None, **asdict(shape)} if shape is not None else None,
        extrapolation=extrapolation,
        params_column=fit_result.params_column,
        N_law=N_law,
        interval_note=bands.note,
    )


def _law_params(
    fit_result: FitResult, N: float, shape: Shape | None, params_total: float | str | None
) -> float:
    """The N the law reads for a target of N non-embedding parameters: N itself, or for a fit on N_total
    the target's total count (given, or from its shape)."""
    if fit_result.params_column != "N_total":
        return N
    if params_total is not None:
        return parse_quantity(params_total, "N_total (all parameters)")
    if shape is None:
        shape = shape_for_params(N, **GPT3_CONTEXT_AND_VOCAB)  # the GPT-3-like shape assumed below
    return N + float(n_params_total(shape) - n_params(shape))


def _pair(lo: np.ndarray | None, hi: np.ndarray | None) -> tuple[float, float] | None:
    if lo is None or hi is None or not (np.isfinite(lo[0]) and np.isfinite(hi[0])):
        return None
    return float(lo[0]), float(hi[0])


def check_sensible(N: float, D: float) -> None:
    """UsageError for N params or D tokens past any sensible run (MAX_PARAMS, MAX_TOKENS) or below 1."""
    if N > MAX_PARAMS:
        raise UsageError(f"N = {N:.3g} parameters is past any sensible model (> {MAX_PARAMS:.0e})")
    if D > MAX_TOKENS:
        raise UsageError(
            f"D = {D:.3g} tokens is beyond any sensible corpus (> {MAX_TOKENS:.0e}); check units or the law"
        )
    if N < 1 or D < 1:
        raise UsageError(f"N = {N:.3g} and D = {D:.3g} must each be at least 1")


def _optimal_d_interval(fit_result: FitResult, mode: str, N: float, C: float) -> tuple[float, float] | None:
    """95 % percentile interval of D_opt across the bootstrap fits, in the optimal modes."""
    samples = fit_result.bootstrap_optimal
    if samples is None or len(samples.a) < 2 or mode not in ("optimal_for_params", "optimal_for_compute"):
        return None
    d_opts = []
    for co in samples.resamples():
        d_opts.append(float(co.D_opt_for_params(N) if mode == "optimal_for_params" else co.D_opt(C)))
    return _interval(d_opts) if d_opts else None


def fitted_range(table: pd.DataFrame) -> dict[str, list[float]]:
    """{"N": [min, max], "D": [...], "C": [...]} of a run table: the range a law fitted on it covers."""
    return {k: [float(table[k].min()), float(table[k].max())] for k in ("N", "D", "C") if k in table}


def _interval(values: Sequence[float]) -> tuple[float, float] | None:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) < 2:
        return None
    lo, hi = percentile_interval(finite)
    return float(lo), float(hi)


def _extrapolation(data_range: Mapping[str, Sequence[float]], N: float, C: float) -> dict[str, float]:
    """Factors N / max fitted N and C / max fitted C, with a warning when either exceeds 10."""
    factors = {"N": N / data_range["N"][1], "C": C / data_range["C"][1]}
    far = {k: v for k, v in factors.items() if v > LONG_EXTRAPOLATION}
    if far:
        said = ", ".join(f"{k} {v:.3g}x (10^{math.log10(v):.1f})" for k, v in far.items())
        warnings.warn(
            f"long extrapolation beyond the largest fitted run: {said}; the loss interval covers the fit's "
            "noise, not a change of regime",
            ScalingWarning,
            stacklevel=3,
        )
    return factors
