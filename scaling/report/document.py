"""The one-command report: fit, allocate, label regimes, backtest, predict GPT-3 175B, draw, write.

`write_report(INPUT, OUT)` composes the public API (`scaling.runs.table`, `scaling.fitting.procedure`,
`scaling.study.allocation`, `scaling.study.regimes`, `scaling.study.prediction`) and the figures of
`scaling.report.figures` into OUT:

    OUT/report.md        data summary, fitted parameters with 95 % intervals, compute-optimal exponents by
                         approach, regimes, the GPT-3 175B prediction with its budget, the backtest error,
                         links to the figures
    OUT/figures/*.png    every figure the data supports (PNG at `dpi`, and the same as PDF)
    OUT/fit.json         the fit (`scaling.fitting.result.load_fit` reads it back)
    OUT/runs.csv         the run table the report is about; OUT/regimes.csv the label of every run

The whole folder is built beside OUT and swapped in at the end, so a re-run replaces the previous report
as a whole (no stale figure survives) and a failed run leaves the previous report untouched. What a killed
run leaves beside OUT (its hidden staging folder, the previous report moved aside) is cleaned up by the
next run; a report folder this user cannot write is refused rather than replaced.
Units: N non-embedding parameters, D tokens, C = 6 N D FLOPs, loss nats/token.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling import __version__
from scaling.defaults import HOLDOUT_TOP
from scaling.errors import FigureNotSupported, ScalingWarning, UsageError
from scaling.fitting.backtest import BACKTEST_BOOTSTRAP, TRAIN_FRACTIONS, Backtest, backtest
from scaling.fitting.choice import CandidateScore
from scaling.fitting.data import use_params_column
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import AUTO, fit
from scaling.fitting.result import FitResult, save_fit
from scaling.fitting.select import fit_auto, score_of
from scaling.io import FOLDER_MODE, atomic_write_text, error_at
from scaling.reference import GPT3_175B
from scaling.report import figures as plots
from scaling.runs.table import ISOFLOP_TOLERANCE, collect_runs, curve_of, load_runs, series_groups
from scaling.runs.trackers import detect
from scaling.shapes import PRESETS
from scaling.study.allocation import DEFAULT_WINDOW, Allocation, allocate, check_profile_options
from scaling.study.prediction import Prediction, fitted_range, predict
from scaling.study.regimes import Thresholds, classify
from scaling.units import format_quantity, sci

# the two predictions of a model of GPT-3 175B's size and shape
AS_TRAINED = f"as trained ({format_quantity(GPT3_175B.D)} tokens)"
OPTIMAL = f"compute-optimal for {format_quantity(GPT3_175B.N)}"
MAX_TABLE_ROWS = 60  # longer per-run tables go to CSV files, linked from the report
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Analysis:
    """Every result a report shows: the run table (N params, D tokens, C FLOPs, loss nats/token), the fit,
    the allocations by approach, the backtest, the regime labels, the GPT-3 175B predictions, the learning
    curves; `skipped` says why a part the data do not support is missing; `warnings` what was noted."""

    source: str
    table: pd.DataFrame
    fit: FitResult
    allocations: dict[int, Allocation]
    backtest: Backtest | None
    calibration: CandidateScore | None  # the fitted law's rolling backtest (errors, interval coverage)
    regimes: pd.DataFrame | None
    predictions: dict[str, Prediction]
    curves: dict[str, pd.DataFrame]
    statuses: dict[str, int] | None  # runs per status in a sweep folder; None for a table
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote: report.md, the figures (name -> PNG; the PDF sits beside it), the
    figures and sections left out with why, and the analysis behind every number."""

    out_dir: Path
    markdown: Path
    figures: dict[str, Path]
    skipped: dict[str, str]
    analysis: Analysis


def _num(value: float) -> str:
    """Budgets and memory as people read them: 9,161 and 698.4 in digits, 1.2e9 and 0.0123 in scientific."""
    return f"{value:,.0f}" if 1e3 <= abs(value) < 1e9 else sci(value, 4)


def _ci(ci: tuple[float, float] | None, digits: int = 4) -> str:
    return f"[{sci(ci[0], digits)}, {sci(ci[1], digits)}]" if ci else "n/a (no bootstrap)"


def _decades(hi: float, lo: float) -> float:
    return math.log10(hi / lo)


def _attempt(
    what: str, skipped: dict[str, str], func: Callable[[], Any], cannot: type[UsageError] = UsageError
) -> Any:
    """func(), or None with the reason in `skipped` when the data does not support it: `cannot` is the
    documented 'cannot' (UsageError of the API, FigureNotSupported of a figure); anything else is a bug
    and propagates."""
    try:
        return func()
    except cannot as exc:
        skipped[what] = str(exc)
        return None


# ---- analysis --------------------------------------------------------------------------------------
def _curves(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Learning curves of the runs that have one (their folder's metrics.jsonl or a tracker's history)."""
    if "run" not in table:
        return {}
    curves = {}
    for run in table["run"].astype(str):
        metrics = curve_of(table, run)
        if metrics is not None and {"tokens", "val_loss"} <= set(metrics.columns) and len(metrics):
            curves[run] = metrics
    return curves


def _is_folder(source: Any, tracker: str | None) -> bool:
    """A folder of our own run folders (not a tracker store)."""
    if isinstance(source, pd.DataFrame) or tracker not in (None, "folder"):
        return False
    return Path(source).is_dir() and (tracker == "folder" or detect(source) is None)


def _predictions(result: FitResult, table: pd.DataFrame, skipped: dict[str, str]) -> dict[str, Prediction]:
    data_range = fitted_range(table)
    wanted = {AS_TRAINED: {"D": GPT3_175B.D}, OPTIMAL: {"optimal": True}}
    out = {}
    for label, how in wanted.items():
        value = _attempt(
            f"prediction {label}",
            skipped,
            lambda how=how: predict(result, N=GPT3_175B.preset, data_range=data_range, **how),
        )
        if value is not None:
            out[label] = value
    return out


# ---- markdown --------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _data_section(
    table: pd.DataFrame, statuses: dict[str, int] | None, n_curves: int, allocations: Mapping[int, Allocation]
) -> str:
    sizes = series_groups(table, by="N", across="N", min_points=1)
    budgets = series_groups(table, by="D", across="D", min_points=1)
    n, d, c, loss = (table[k] for k in ("N", "D", "C", "loss"))
    used = f"{len(table)}"
    if statuses:
        total = sum(statuses.values())
        detail = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        used += f" of {total} run folders ({detail}); only completed runs with finite losses are fitted"
    rows = [
        ["runs used", used],
        [
            "model sizes N",
            f"{len(sizes)} distinct, {sci(n.min())} to {sci(n.max())} parameters "
            f"({_decades(n.max(), n.min()):.2f} orders of magnitude)",
        ],
        [
            "token budgets D",
            f"{len(budgets)} distinct, {sci(d.min())} to {sci(d.max())} tokens "
            f"({_decades(d.max(), d.min()):.2f} orders of magnitude)",
        ],
        ["compute C", f"{sci(c.min())} to {sci(c.max())} FLOPs"],
        [
            "tokens per parameter D/N",
            f"{sci((d / n).min())} to {sci((d / n).max())} tokens/param",
        ],
        ["final held-out loss", f"{loss.min():.4g} to {loss.max():.4g} nats/token"],
        ["IsoFLOP profiles", _profile_count(allocations[2]) if 2 in allocations else "none"],
        ["learning curves", f"{n_curves} runs" if n_curves else "none (a run table without run folders)"],
    ]
    return "## Data\n\n" + _md_table(["", ""], rows) + "\n\nThe run table is in [runs.csv](runs.csv).\n"


def _profile_count(allocation: Allocation) -> str:
    left_out = sum(bool(p.left_out) for p in allocation.profiles)
    text = f"{len(allocation.profiles)}"
    return text + (f" ({left_out} left out of Approach 2: minimum at an edge)" if left_out else "")


def true_irreducible_loss(table: pd.DataFrame) -> float | None:
    """The data's known irreducible loss (nats/token): the entropy rate every run of a synthetic source
    records in its summary (column `entropy_rate`); None for real text or runs that disagree."""
    if "entropy_rate" not in table:
        return None
    rates = pd.to_numeric(table["entropy_rate"], errors="coerce").to_numpy(float)
    if not np.isfinite(rates).all() or np.ptp(rates) > 1e-9 * rates.max():
        return None
    return float(rates[0])


def _data_name(table: pd.DataFrame) -> str:
    """The runs' data as their configs name it (`data.name`), or "" when the table does not say."""
    names = table["data.name"].dropna().astype(str).unique() if "data.name" in table else []
    return names[0] if len(names) == 1 else ""


def _fit_section(result: FitResult, table: pd.DataFrame) -> str:
    law = get_law(result.law)
    n_boot = 0 if result.bootstrap_params is None else len(result.bootstrap_params)
    rows = [
        [
            f"`{name}`",
            f"{result.params[name]:.4g}",
            _ci(result.ci.get(name)),
            law.units.get(name, ""),
        ]
        for name in law.param_names
    ]
    unique = table["U"].to_numpy(float) if "U" in table else None
    fitted = plots.law_loss_at(result, table["N"].to_numpy(float), table["D"].to_numpy(float), unique)
    rms = float(np.sqrt(np.mean((np.log(table["loss"].to_numpy(float)) - np.log(fitted)) ** 2)))
    objective = f"summed Huber (delta {result.delta:g})" if result.loss == "huber" else "summed squares"
    text = [
        f"## Fit: {result.law} law\n",
        f"`{law.formula}` fitted on {result.n_points} runs by minimising the {objective} of "
        f"log(observed) - log(predicted) loss: objective = {result.objective:.6g}, "
        f"{'converged' if result.converged else '**NOT converged**'} ({result.message}). "
        f"Intervals: 95 % percentile bootstrap over {n_boot} resamples of the runs"
        + (
            f" ({result.n_bootstrap_failed} refits did not converge and are left out)."
            if result.n_bootstrap_failed
            else "."
        )
        + "\n",
        *(
            f"Stage {i} ({st.name}): {', '.join(f'`{k}`' for k in st.fitted)} fitted on {len(st.rows)} runs "
            f"({st.rule}).\n"
            for i, st in enumerate(result.stages, 1)
        ),
        _md_table(["parameter", "value", "95 % interval", "unit"], rows),
        f"\nRMS of the log residuals: {rms:.4g} (a typical run is fitted within {100 * rms:.2g} % of its "
        "loss). The fit is in [fit.json](fit.json).\n",
    ]
    known = true_irreducible_loss(table)
    if known is not None and "E" in result.params:
        ci = result.ci.get("E")
        inside = ci is not None and ci[0] <= known <= ci[1]
        text.append(
            f"**The true irreducible loss is known**: the runs' synthetic source has entropy rate "
            f"{known:.4g} nats/token, the loss of a perfect model. The fit's E = {result.params['E']:.4g} "
            f"{_ci(ci)} is {100 * (result.params['E'] / known - 1):+.1f} % off it"
            + ("." if ci is None else f", {'inside' if inside else 'outside'} its 95 % interval.")
            + "\n"
        )
    return "\n".join(text)


def _allocation_section(allocations: Mapping[int, Allocation], skipped: Mapping[str, str]) -> str:
    names = plots.APPROACH_NAME
    budget = GPT3_175B.C
    rows = []
    for approach, alloc in sorted(allocations.items()):
        largest = alloc.budgets.get("largest run")
        at_budget = float(alloc.optimal.tokens_per_param(budget))
        rows.append(
            [
                names[approach],
                f"{alloc.a:.4f}",
                _ci(alloc.ci.get("a"), 3),
                f"{alloc.b:.4f}",
                _ci(alloc.ci.get("b"), 3),
                f"{alloc.tokens_per_param[largest]:.3g}" if largest in alloc.tokens_per_param else "",
                f"{at_budget:.3g}",
                alloc.source,
            ]
        )
    text = [
        "## Compute-optimal allocation\n",
        "N_opt = G (C/6)^a parameters and D_opt ∝ (C/6)^b tokens for a budget of C FLOPs "
        "(Hoffmann et al. 2022); tokens per parameter = D_opt / N_opt.\n",
    ]
    if rows:
        text.append(
            _md_table(
                [
                    "approach",
                    "a",
                    "95 % interval",
                    "b",
                    "95 % interval",
                    "tokens/param at the largest run",
                    f"tokens/param at {sci(budget)} FLOPs (GPT-3 175B budget)",
                    "from",
                ],
                rows,
            )
        )
    text.append(_agreement(allocations))
    for approach in (1, 2, 3):
        why = skipped.get(f"approach {approach}")
        if why:
            text.append(f"\n- {names[approach]}: not available for these data: {why}")
    return "\n".join(text) + "\n"


def _agreement(allocations: Mapping[int, Allocation]) -> str:
    """Whether the approaches' 95 % intervals of the exponent a overlap, pair by pair, and over how many
    orders of magnitude of compute each approach's points lie (a short span leaves a power law loose)."""
    with_ci = {k: v.ci["a"] for k, v in sorted(allocations.items()) if "a" in v.ci}
    if len(with_ci) < 2:
        return ""
    pairs = [(i, j) for i in with_ci for j in with_ci if i < j]
    apart = [(i, j) for i, j in pairs if with_ci[i][1] < with_ci[j][0] or with_ci[j][1] < with_ci[i][0]]
    spans = [
        f"Approach {k}: {_decades(v.points['C'].max(), v.points['C'].min()):.2f}"
        for k, v in sorted(allocations.items())
        if v.points is not None and len(v.points) > 1
    ]
    verdict = (
        "The 95 % intervals of a overlap for every pair of approaches."
        if not apart
        else "The 95 % intervals of a do **not** overlap for "
        + ", ".join(f"Approaches {i} and {j}" for i, j in apart)
        + ": these runs do not pin a single N_opt ∝ C^a, read the exponents with care."
    )
    span = f" Orders of magnitude of C spanned by the points each power law fits: {', '.join(spans)}."
    return f"\n{verdict}{span if spans else ''}\n"


def _regime_section(labels: pd.DataFrame | None, skipped: Mapping[str, str]) -> str:
    text = ["## Regimes\n"]
    if labels is None:
        return "\n".join(text + [f"Not available: {skipped.get('regimes', 'no labels')}\n"])
    counts = labels["regime"].value_counts()
    band = Thresholds().band
    text.append(
        "Each run against the fitted law (law view: D more than "
        f"{band:.3g}x below / above the compute-optimal D_opt(C) at its compute is overfitting / "
        "underfitting) and against its own learning curves where the run folder has them (curve view: "
        "held-out loss rising, a growing train/held-out gap, too many repeats; a measured overfit outranks "
        "the law). Counts: " + ", ".join(f"{int(counts[k])} {k}" for k in counts.index) + ". "
        "Every label with its reason is in [regimes.csv](regimes.csv).\n"
    )
    if len(labels) <= MAX_TABLE_ROWS:
        rows = []
        for _, row in labels.sort_values(["N", "D"]).iterrows():
            onset, lost = row.get("onset_tokens"), row.get("loss_lost")
            rows.append(
                [
                    sci(row["N"]),
                    sci(row["D"]),
                    sci(row["D"] / row["N"]),
                    row["regime"],
                    sci(onset) if onset is not None and pd.notna(onset) else "",
                    f"{lost:.3g}" if lost is not None and pd.notna(lost) else "",
                ]
            )
        text.append(
            _md_table(
                [
                    "N (params)",
                    "D (tokens)",
                    "D/N (tokens/param)",
                    "regime",
                    "overfitting onset (tokens)",
                    "loss lost vs compute-optimal (nats/token)",
                ],
                rows,
            )
        )
    return "\n".join(text) + "\n"


def _prediction_section(
    predictions: Mapping[str, Prediction],
    table: pd.DataFrame,
    bt: Backtest | None,
    skipped: Mapping[str, str],
) -> str:
    title = "## Prediction: GPT-3 175B"
    if not predictions:
        text = [title + "\n"]
        reasons = "; ".join(v for k, v in skipped.items() if k.startswith("prediction"))
        return "\n".join(text + [f"Not available: {reasons}\n"])
    cols = list(predictions)
    first = predictions[cols[0]]
    n_max, c_max = float(table["N"].max()), float(table["C"].max())
    text = [
        f"{title}, extrapolated {_decades(first.N, n_max):.1f} orders of magnitude in N and "
        f"{_decades(first.C, c_max):.1f} in C beyond the runs\n"
    ]
    rows = []

    def row(label: str, func: Callable[[Prediction], str]) -> None:
        rows.append([label] + [func(predictions[c]) for c in cols])

    row("N (parameters)", lambda p: f"{sci(p.N, 4)} ({format_quantity(p.N)})")
    row(
        "D (tokens)",
        lambda p: f"{sci(p.D, 4)} ({format_quantity(p.D)})" + (f", 95 % {_ci(p.D_ci, 3)}" if p.D_ci else ""),
    )
    row("tokens per parameter", lambda p: f"{p.tokens_per_param:.3g}")
    row("C = 6ND (FLOPs)", lambda p: sci(p.C))
    row(
        "C with attention (FLOPs)",
        lambda p: sci(p.flops_with_attention) if p.flops_with_attention else "",
    )
    row("**loss (nats/token)**", lambda p: f"**{p.loss:.4g}** 95 % {_ci(p.loss_ci)}")  # the mean law's
    row("one run's loss, 95 % prediction interval", lambda p: _ci(p.loss_pi) if p.loss_pi else "n/a")
    row("regime", lambda p: p.regime or "")
    row("PF-days", lambda p: _num(p.pf_days))
    row(f"GPU-days ({first.accelerator} at {first.mfu:.0%} MFU)", lambda p: _num(p.gpu_days))
    row(
        "weights fp32 / bf16 (GB)", lambda p: f"{_num(p.memory.weights_fp32)} / {_num(p.memory.weights_bf16)}"
    )
    row(
        "training state, mixed-precision Adam (GB)",
        lambda p: f"{_num(p.memory.training_mixed_adam)} ({p.memory.gpus_80gb} x 80 GB GPUs)",
    )
    name = _data_name(table)
    data = f"`data.name={name}`" if name else "the data of these runs"
    known = true_irreducible_loss(table)
    shape = PRESETS[GPT3_175B.preset]
    text.append(
        f"A model of {GPT3_175B.name}'s size and shape (preset `{GPT3_175B.preset}`: {shape.n_layer} layers, "
        f"d_model {shape.d_model}, {shape.n_head} heads, context {shape.n_ctx}) {AS_TRAINED} and with the "
        "compute-optimal data for its size "
        f"under the fit (Approach 3). The loss is the law's loss **on {data}**, with its corpus and "
        "tokenizer"
        + (f" (whose true irreducible loss is {known:.4g} nats/token)" if known is not None else "")
        + ": what a 175B-parameter model would reach here, not GPT-3's loss on GPT-3's data. The loss "
        "interval is the mean law's (bootstrap of the fit); one run's loss adds run-to-run noise. "
        "Memory counts all parameters including embeddings; activations are not included.\n"
    )
    text.append(_md_table(["", *cols], rows))
    text.append(
        f"\nThis extrapolates {_decades(first.N, n_max):.1f} orders of magnitude in N beyond the largest "
        f"run ({sci(n_max)} parameters) and {_decades(first.C, c_max):.1f} in C (largest run "
        f"{sci(c_max)} FLOPs). The interval covers the fit's uncertainty only, not a change of regime"
        + (
            f"; the backtest below extrapolated {_decades(bt.runs['C'].max(), bt.cutoff_C):.1f} orders of "
            f"magnitude in C with a mean error of {bt.mean_abs_rel_error:.2%}."
            if bt is not None
            else "."
        )
        + "\n"
    )
    return "\n".join(text)


def _choice_section(result: FitResult, calibration: CandidateScore | None, skipped: Mapping[str, str]) -> str:
    """Law choice by rolling backtest (law x rolling error x interval coverage) and the calibration of the
    fitted law's intervals."""
    text = ["## Law choice and calibrated intervals\n"]
    selection = None if result.selection is None else result.selection.to_json()
    scores = (selection or {}).get("scores")
    if scores is None and calibration is not None:
        scores = [calibration.to_json()]
    if not scores:
        return "\n".join(text + [f"No rolling backtest: {skipped.get('calibration', 'not run')}\n"])
    cuts = (selection or {}).get("cutoffs") or []
    axis = (selection or {}).get("axis", "C")
    if selection:
        text.append(
            f"`--law auto` fitted each candidate law on the runs with {axis} at or below each of {len(cuts)} "
            f"cut-offs ({', '.join(sci(c) for c in cuts)}) and predicted every run above it. "
            f"**Chosen: {selection['reason']}.**\n"
        )
    else:
        text.append(
            f"The {result.law} law in a rolling backtest: fitted on the runs at or below each compute "
            "cut-off and scored on the runs above (as `--law auto` scores every law).\n"
        )
    text.append(
        "Rolling error: mean |relative error| of the predicted loss of the held-out runs, averaged over the "
        "cut-offs. Coverage: the fraction of held-out runs inside their 95 % prediction interval of one run "
        "(fit uncertainty plus run-to-run noise) and inside the 95 % interval of the mean law; a calibrated "
        "prediction interval covers about 95 %.\n"
    )
    rows = [
        [
            s["law"],
            s["subset"],
            "not scored: " + s["failed"] if s["failed"] else f"{s['rolling_error']:.2%}",
            "" if s["coverage_run"] is None else f"{s['coverage_run']:.0%}",
            "" if s["coverage_mean"] is None else f"{s['coverage_mean']:.0%}",
        ]
        for s in scores
    ]
    text.append(
        _md_table(["law", "fit subset", "rolling error", "95 % prediction-interval coverage",
                   "mean-law interval coverage"], rows)
    )
    return "\n".join(text) + "\n"


def _backtest_section(bt: Backtest | None, skipped: Mapping[str, str]) -> str:
    text = ["## Backtest\n"]
    if bt is None:
        return "\n".join(text + [f"Not available: {skipped.get('backtest', '')}\n"])
    text.append(
        f"The {bt.law} law fitted on the {bt.fit.n_points} runs with C ≤ {sci(bt.cutoff_C)} FLOPs predicts "
        f"the {len(bt.runs)} runs of the top {bt.holdout_top:.0%} by compute with a **mean absolute relative "
        f"error of {bt.mean_abs_rel_error:.2%}** (mean signed {bt.mean_rel_error:+.2%}, max "
        f"{bt.max_abs_rel_error:.2%}) of the loss.\n"
    )
    if len(bt.runs) <= MAX_TABLE_ROWS:
        rows = [
            [
                sci(r.N),
                sci(r.D),
                sci(r.C),
                f"{r.loss:.4f}",
                f"{r.predicted:.4f}",
                f"{r.rel_error:+.2%}",
            ]
            for r in bt.runs.itertuples()
        ]
        text.append(
            _md_table(
                [
                    "N (params)",
                    "D (tokens)",
                    "C (FLOPs)",
                    "observed loss (nats/token)",
                    "predicted (nats/token)",
                    "relative error",
                ],
                rows,
            )
        )
    return "\n".join(text) + "\n"


FIGURE_TITLES = {
    "loss_vs_compute": "Loss against compute, frontier and fitted L(C) to the GPT-3 175B budget",
    "isoflop_profiles": "IsoFLOP profiles, each fitted near its minimum (filled: the runs its fit used)",
    "loss_vs_params": "Loss against N, one curve per token budget D",
    "loss_vs_tokens": "Loss against D, one curve per model size N",
    "nd_plane": "The (N, D) plane: loss contours, compute-optimal line, regimes, GPT-3 and Chinchilla",
    "allocation": "N_opt(C) and D_opt(C) by approach",
    "residuals": "Residuals of the fit",
    "backtest": "Backtest: predicted against observed loss of held-out runs",
    "training_curves": "Learning curves with overfitting onsets",
}


def _figures_section(figures: Mapping[str, Path], skipped: Mapping[str, str]) -> str:
    text = ["## Figures\n"]
    for name, png in figures.items():
        text.append(
            f"### {FIGURE_TITLES[name]}\n\n![{FIGURE_TITLES[name]}](figures/{png.name}) "
            f"([PDF](figures/{png.stem}.pdf))\n"
        )
    missing = [
        f"- {name}: {skipped[f'figure {name}']}" for name in FIGURE_TITLES if f"figure {name}" in skipped
    ]
    if missing:
        text.append("Not drawn, because the data do not support them:\n\n" + "\n".join(missing) + "\n")
    return "\n".join(text)


# ---- the driver ------------------------------------------------------------------------------------
def analyse(
    source: str | Path | pd.DataFrame,
    *,
    column_map: Mapping[str, str] | None = None,
    drop_top_loss: int = 0,
    tracker: str | None = None,
    experiments: Sequence[str] | None = None,
    law: str = "chinchilla",
    params_column: str = "N",
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    holdout_top: float = HOLDOUT_TOP,
    isoflop_tolerance: float = ISOFLOP_TOLERANCE,
    profile_fit: str = "window",
    window: int = DEFAULT_WINDOW,
) -> Analysis:
    """Everything a report shows, for the runs of `source` (a sweep folder, a run-table CSV or a
    DataFrame). law: a law name or "auto" (rolling-backtest choice); params_column: "N" or "N_total",
    the parameter count the law reads. bootstrap: resamples for every 95 % interval (fit, allocations,
    predictions);
    holdout_top: fraction of the runs (by compute) the backtest holds out; isoflop_tolerance: relative
    compute difference of the runs of one IsoFLOP profile; profile_fit, window: how Approach 2 fits each
    profile (`scaling.study.allocation.allocate`). UsageError when the runs cannot
    be fitted at all; parts the data do not support are left out with the reason in `skipped`."""
    # A bad option is the user's to fix: fail now rather than skip the part it belongs to.
    if not 0 < holdout_top < 1:
        raise UsageError(f"`holdout_top` must be a fraction between 0 and 1, got {holdout_top}")
    check_profile_options(isoflop_tolerance, profile_fit, window)
    if seed < 0:  # else every resampled interval would be skipped
        raise UsageError(f"`seed` must be >= 0, got {seed}")
    skipped: dict[str, str] = {}
    with warnings.catch_warnings(record=True) as noted:
        warnings.simplefilter("always", ScalingWarning)
        # every run, to count statuses
        folders = collect_runs(source) if _is_folder(source, tracker) else None
        table = load_runs(
            source if folders is None else folders,
            column_map,
            drop_top_loss=drop_top_loss,
            tracker=tracker,
            experiments=experiments,
        )
        final = {"bootstrap": bootstrap, "seed": seed, "params_column": params_column}
        result = fit_auto(table, **final) if law == AUTO else fit(table, law=law, **final)
        law = result.law
        table = use_params_column(table, params_column)  # from here on N is the count the law reads
        options = {
            1: {"bootstrap": bootstrap, "seed": seed},
            2: {
                "bootstrap": bootstrap,
                "seed": seed,
                "isoflop_tolerance": isoflop_tolerance,
                "profile_fit": profile_fit,
                "window": window,
            },
            3: {"fit_result": result},
        }
        allocations = {}
        for approach, extra in options.items():
            value = _attempt(
                f"approach {approach}", skipped, lambda a=approach, e=extra: allocate(table, approach=a, **e)
            )
            if value is not None:
                allocations[approach] = value
        bt = _attempt("backtest", skipped, lambda: backtest(table, law=law, holdout_top=holdout_top))
        calibration = None
        if result.selection is None:  # with --law auto the choice's table holds every law's calibration
            calibration = _attempt("calibration", skipped, lambda: _calibration(table, law))
        labels = _attempt("regimes", skipped, lambda: classify(table, result).labels)
        predictions = _predictions(result, table, skipped)
    notes = list(dict.fromkeys(str(w.message) for w in noted if issubclass(w.category, ScalingWarning)))
    for text in notes:  # each once, though the fit, the allocations and the backtest may each have said it
        warnings.warn(text, ScalingWarning, stacklevel=2)
    for w in noted:  # anything else (numpy's overflow notes, ...) passes on as it was, not in the report
        if not issubclass(w.category, ScalingWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return Analysis(
        source=str(source) if not isinstance(source, pd.DataFrame) else "a DataFrame",
        table=table,
        fit=result,
        allocations=allocations,
        backtest=bt,
        calibration=calibration,
        regimes=labels,
        predictions=predictions,
        curves=_curves(table),
        statuses=None if folders is None else folders["status"].astype(str).value_counts().to_dict(),
        skipped=skipped,
        warnings=notes,
    )


def _calibration(table: pd.DataFrame, law: str) -> CandidateScore:
    """The rolling backtest of `law` on all runs: its errors and the coverage of its intervals."""
    return score_of(backtest(table, law, rolling=TRAIN_FRACTIONS, bootstrap=BACKTEST_BOOTSTRAP))


def _figure_makers(an: Analysis) -> dict[str, tuple[str | None, Callable[[], Any]]]:
    """Figure name -> (why the data cannot support it, or None; how to draw it)."""
    as_trained = an.predictions.get(AS_TRAINED)
    return {
        "loss_vs_compute": (
            None,
            lambda: plots.plot_loss_vs_compute(
                an.table, an.fit, predictions=[as_trained] if as_trained else ()
            ),
        ),
        "isoflop_profiles": (
            an.skipped.get("approach 2"),
            lambda: plots.plot_isoflop_profiles(an.allocations[2]),
        ),
        "loss_vs_params": (None, lambda: plots.plot_loss_vs_params(an.table, an.fit)),
        "loss_vs_tokens": (None, lambda: plots.plot_loss_vs_tokens(an.table, an.fit)),
        "nd_plane": (None, lambda: plots.plot_nd_plane(an.fit, an.table, an.regimes)),
        "allocation": (
            None if an.allocations else "no approach applies",
            lambda: plots.plot_allocation(list(an.allocations.values())),
        ),
        "residuals": (None, lambda: plots.plot_residuals(an.table, an.fit)),
        "backtest": (an.skipped.get("backtest"), lambda: plots.plot_backtest(an.backtest, an.table)),
        "training_curves": (
            None if an.curves else "no run folder with a metrics.jsonl",
            lambda: plots.plot_training_curves(an.curves, an.table, an.regimes),
        ),
    }


def write_report(
    source: str | Path | pd.DataFrame,
    out_dir: str | Path,
    *,
    title: str | None = None,
    dpi: int = 200,
    **options: Any,
) -> Report:
    """Analyse the runs of `source` (`analyse`, which takes `options`) and write the report to `out_dir`,
    replacing it as a whole (see the module docstring). PNGs at `dpi` (at least 150)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder; choose another `out_dir`")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "report.md").is_file():
        raise UsageError(
            f"{out_dir}: holds something other than a report; the report replaces its folder as a whole, "
            "so choose a new or empty one"
        )
    if dpi < 150:
        raise UsageError(f"`dpi` must be at least 150 for readable figures, got {dpi}")
    locked = _read_only_folder(out_dir)
    if locked is not None:
        raise UsageError(
            f"{out_dir}: the report folder cannot be written ({locked} is read-only) and would be replaced "
            "as a whole; make it writable (chmod -R u+w) or choose another `out_dir`"
        )
    parent = out_dir.resolve().parent
    if parent.is_dir():
        _clean_leftovers(parent, out_dir.name)
    an = analyse(source, **options)
    skipped = dict(an.skipped)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging, lock = _new_staging(parent, out_dir.name)
    except OSError as exc:
        raise error_at(exc, out_dir) from None
    try:
        (staging / "figures").mkdir()
        figures: dict[str, Path] = {}
        for name, (unsupported, make) in _figure_makers(an).items():
            if unsupported:
                skipped[f"figure {name}"] = unsupported
                continue
            fig = _attempt(f"figure {name}", skipped, make, cannot=FigureNotSupported)
            if fig is not None:
                plots.save_figure(fig, str(staging / "figures" / name), dpi=dpi)
                figures[name] = out_dir / "figures" / f"{name}.png"
        save_fit(an.fit, staging / "fit.json")
        an.table.to_csv(staging / "runs.csv", index=False)
        if an.regimes is not None:
            an.regimes.to_csv(staging / "regimes.csv", index=False)
        atomic_write_text(staging / "report.md", _markdown(an, figures, skipped, title))
        _swap_in(staging, out_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk: name the report, not a file in its staging folder
            raise error_at(exc, out_dir) from None
        raise
    finally:
        os.close(lock)
    return Report(
        out_dir=out_dir, markdown=out_dir / "report.md", figures=figures, skipped=skipped, analysis=an
    )


def _markdown(
    an: Analysis, figures: Mapping[str, Path], skipped: Mapping[str, str], title: str | None
) -> str:
    name = title or (Path(an.source).name if an.source != "a DataFrame" else "runs")
    sections = [
        f"# Scaling report: {name}\n",
        f"Written by `scaling report` (scaling {__version__}) from `{an.source}`. Units: N = non-embedding "
        "parameters, D = training tokens, C = 6ND training FLOPs, loss = held-out cross-entropy in "
        "nats/token.\n",
        _data_section(an.table, an.statuses, len(an.curves), an.allocations),
        _fit_section(an.fit, an.table),
        _allocation_section(an.allocations, skipped),
        _regime_section(an.regimes, skipped),
        _prediction_section(an.predictions, an.table, an.backtest, skipped),
        _backtest_section(an.backtest, skipped),
        _choice_section(an.fit, an.calibration, skipped),
        _figures_section(figures, skipped),
    ]
    if an.warnings:
        sections.append("## Warnings\n\n" + "\n".join(f"- {n}" for n in an.warnings) + "\n")
    return "\n".join(sections)


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Replace `out_dir` by the finished `staging` folder (two renames on one file system). The previous
    report waits as the `.old` twin of `staging` between the renames, where `_clean_leftovers` finds it."""
    os.chmod(staging, FOLDER_MODE)  # mkdtemp makes it private; a report is for reading
    if out_dir.exists():
        old = staging.with_suffix(".old")
        out_dir.rename(old)
        try:
            staging.rename(out_dir)
        except BaseException:
            old.rename(out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)


# A report is built in `.NAME.XXXXXXXX.tmp` beside NAME (XXXXXXXX from mkdtemp), locked by its writer.
_LEFTOVER = r"\.{name}\.([a-z0-9_]{{8}})\.(tmp|old)"


def _new_staging(parent: Path, name: str) -> tuple[Path, int]:
    """A fresh staging folder for report NAME and a descriptor holding its lock (close it when done)."""
    while True:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
        fd = os.open(staging, os.O_RDONLY)
        with contextlib.suppress(OSError):  # a file system without locks: no leftover there looks stale
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(staging)):
                return staging, fd
        except FileNotFoundError:
            pass
        os.close(fd)  # another run's cleaning took it for a leftover before it was locked: take another


def _try_lock(folder: Path) -> int | None:
    """A descriptor holding `folder`'s lock, or None when a live writer holds it (or it cannot be told)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _clean_leftovers(parent: Path, name: str) -> None:
    """Remove what killed writers of report NAME left in `parent`: staging folders (`.tmp`) and previous
    reports moved aside (`.old`). A writer killed between its two renames left NAME missing: its `.old`
    goes back to NAME, so no report is ever lost. Folders a live writer holds are left alone."""
    pattern = re.compile(_LEFTOVER.format(name=re.escape(name)))
    try:
        tags = sorted({m.group(1) for e in os.scandir(parent) if (m := pattern.fullmatch(e.name))})
    except OSError:
        return
    for tag in tags:
        staging, old, out = parent / f".{name}.{tag}.tmp", parent / f".{name}.{tag}.old", parent / name
        lock = _try_lock(staging)
        if lock is None and staging.exists():
            continue  # its writer is alive
        try:
            if old.is_dir() and not out.exists():
                old.rename(out)  # its writer died between the two renames: the old report goes back
            else:
                shutil.rmtree(old, ignore_errors=True)  # the new report is in place: this is the previous
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            if lock is not None:
                os.close(lock)


def _read_only_folder(out_dir: Path) -> Path | None:
    """The first folder of the report `out_dir` (itself or figures/) this user cannot write, or None.
    Replacing a report removes its folders; one that cannot be emptied would stay behind, hidden."""
    if not out_dir.is_dir():
        return None
    for folder in (out_dir, *(p for p in out_dir.iterdir() if p.is_dir() and not p.is_symlink())):
        if not os.access(folder, os.W_OK | os.X_OK):
            return folder
    return None
