"""The one-command report: the markdown of every section, the figures, and `write_report`, which writes them.

`write_report(INPUT, OUT)` runs the pipeline (`scaling.report.pipeline.analyse`), draws the figures of
`scaling.report.figures` and `scaling.report.study_figures` and writes OUT:

    OUT/report.md        data summary, fitted parameters with 95 % intervals, compute-optimal exponents by
                         approach, regimes, the GPT-3 175B prediction with its budget, the backtest error,
                         links to the figures
    OUT/figures/*.png    every figure the data supports (PNG at `dpi`, and the same as PDF)
    OUT/fit.json         the fit (`scaling.fitting.result.load_fit` reads it back)
    OUT/runs.csv         the run table the report is about; OUT/regimes.csv the label of every run

The whole folder is built beside OUT and swapped in at the end (`scaling.io.swap_in`), so a re-run
replaces the previous report as a whole (no stale figure survives) and a failed run leaves the previous
report untouched. What a killed run leaves beside OUT (its hidden staging folder, the previous report
moved aside) is cleaned up by the next run; a report folder this user cannot write is refused rather
than replaced.
Units: N non-embedding parameters, D tokens, C = 6 N D FLOPs, loss nats/token.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling import __version__
from scaling.errors import FigureNotSupported, UsageError
from scaling.fitting.backtest import Backtest
from scaling.fitting.choice import CandidateScore
from scaling.fitting.laws import get_law
from scaling.fitting.result import FitResult, save_fit
from scaling.io import (
    atomic_write_text,
    check_creatable,
    clean_leftovers,
    error_at,
    new_staging,
    read_only_folder,
    swap_in,
)
from scaling.reference import GPT3_175B
from scaling.report import downstream as task_figures
from scaling.report import figures as run_figures
from scaling.report import study_figures
from scaling.report.pipeline import AS_TRAINED, Analysis, analyse, attempt
from scaling.report.style import law_loss_at, save_figure
from scaling.runs.table import series_groups
from scaling.shapes import PRESETS
from scaling.study.allocation import Allocation
from scaling.study.hparams import RecipeUse
from scaling.study.prediction import Prediction
from scaling.study.regimes import Thresholds
from scaling.units import count, format_quantity, sci

MAX_TABLE_ROWS = 60  # longer per-run tables go to CSV files, linked from the report


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


# ---- markdown --------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _data_section(
    table: pd.DataFrame,
    statuses: dict[str, int] | None,
    n_curves: int,
    allocations: Mapping[int, Allocation],
    recipes: RecipeUse | None,
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
        ["learning curves", count(n_curves, "run") if n_curves else "none (a run table without run folders)"],
        ["hyperparameters (peak LR, batch)",
         "; ".join(recipes.describe().splitlines()) if recipes else "not recorded (needs the runs' saved "
         "configs: train.lr, train.batch_size and the model shape, as a sweep folder or `scaling runs` has)"],
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
    unreliable = result.bootstrap_unreliable
    rows = [
        [
            f"`{name}`",
            f"{result.params[name]:.4g}",
            "" if unreliable else _ci(result.ci.get(name)),
            law.units.get(name, ""),
        ]
        for name in law.param_names
    ]
    unique = table["U"].to_numpy(float) if "U" in table else None
    fitted = law_loss_at(result, table["N"].to_numpy(float), table["D"].to_numpy(float), unique)
    rms = float(np.sqrt(np.mean((np.log(table["loss"].to_numpy(float)) - np.log(fitted)) ** 2)))
    objective = f"summed Huber (delta {result.delta:g})" if result.loss == "huber" else "summed squares"
    text = [
        f"## Fit: {result.law} law\n",
        f"`{law.formula}` fitted on {result.n_points} runs by minimising the {objective} of "
        f"log(observed) - log(predicted) loss: objective = {result.objective:.6g}, "
        f"{'converged' if result.converged else '**NOT converged**'} ({result.message}). "
        + (
            f"No intervals: {unreliable}."
            if unreliable
            else f"Intervals: 95 % percentile bootstrap over {n_boot} resamples of the runs"
            + (
                f" ({result.n_bootstrap_failed} refits did not converge and are left out)."
                if result.n_bootstrap_failed
                else "."
            )
        )
        + "\n",
        *([] if result.design is None else [f"Design: {result.design.words}; laws these runs identify: "
                                            f"{', '.join(result.design.laws()) or 'none'}.\n"]),
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


def _allocation_section(
    allocations: Mapping[int, Allocation], skipped: Mapping[str, str], result: FitResult
) -> str:
    if not result.identifies_allocation:  # one sentence, not the same refusal once per approach
        return (
            "## Compute-optimal allocation\n\n"
            f"The compute-optimal allocation is {result.design.not_identified}. No approach applies.\n"
        )
    names = study_figures.APPROACH_NAME
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


def _regime_section(labels: pd.DataFrame | None, skipped: Mapping[str, str], result: FitResult) -> str:
    text = ["## Regimes\n"]
    if labels is None:
        return "\n".join(text + [f"Not available: {skipped.get('regimes', 'no labels')}\n"])
    if not result.identifies_allocation:  # no law view: say why once, not only in regimes.csv
        text.append(f"The law view (against the compute-optimal D_opt(C)) is {result.design.not_identified}."
                    "\n")
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
        # each reason once: both predictions often stop at the same check
        reasons = "; ".join(dict.fromkeys(v for k, v in skipped.items() if k.startswith("prediction")))
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
        "interval is the mean law's (bootstrap of the fit); one run's loss adds run-to-run noise and, "
        "beyond the runs, the law's extrapolation error (docs/fitting.md, calibrated intervals). "
        "Memory counts all parameters including embeddings; activations are not included.\n"
    )
    text.append(_md_table(["", *cols], rows))
    text.append(
        f"\nThis extrapolates {_decades(first.N, n_max):.1f} orders of magnitude in N beyond the largest "
        f"run ({sci(n_max)} parameters) and {_decades(first.C, c_max):.1f} in C (largest run "
        f"{sci(c_max)} FLOPs). The mean law's interval covers the fit's uncertainty only, one run's the "
        "typical extrapolation error of a law too, neither a change of regime"
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
    if selection and selection.get("uncompared"):
        return "\n".join(text + [f"`--law auto`: **{selection['reason']}.**\n"])
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
        _md_table(
            [
                "law",
                "fit subset",
                "rolling error",
                "95 % prediction-interval coverage",
                "mean-law interval coverage",
            ],
            rows,
        )
    )
    return "\n".join(text) + "\n"


def _backtest_section(bt: Backtest | None, skipped: Mapping[str, str]) -> str:
    text = ["## Backtest\n"]
    if bt is None:
        return "\n".join(text + [f"Not available: {skipped.get('backtest', '')}\n"])
    text.append(
        f"The {bt.law} law fitted on the {bt.fit.n_points} runs with C ≤ {sci(bt.cutoff_C)} FLOPs predicts "
        f"the {count(len(bt.runs), 'run')} of the top {bt.holdout_top:.0%} by compute with a **mean absolute "
        f"relative error of {bt.mean_abs_rel_error:.2%}** (mean signed {bt.mean_rel_error:+.2%}, max "
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
    "loss_vs_compute": "Loss against compute: the frontier and the fitted compute-optimal L(C) (where the "
    "runs identify it) to the GPT-3 175B budget",
    "isoflop_profiles": "IsoFLOP profiles, each fitted near its minimum (filled: the runs its fit used)",
    "loss_vs_params": "Loss against N, one curve per token budget D",
    "loss_vs_tokens": "Loss against D, one curve per model size N",
    "nd_plane": "The (N, D) plane: loss contours, compute-optimal line, regimes, GPT-3 and Chinchilla",
    "allocation": "N_opt(C) and D_opt(C) by approach",
    "residuals": "Residuals of the fit",
    "backtest": "Backtest: predicted against observed loss of held-out runs",
    "training_curves": "Learning curves with overfitting onsets",
}


def _curve_law_caption(fitted_curves: Mapping[str, pd.DataFrame]) -> str:
    """How closely the learning-curve law drawn over the logged curves follows them."""
    if not fitted_curves:
        return ""
    points = pd.concat(fitted_curves.values())
    error = (points["loss"] / points["observed"] - 1).abs()
    return (
        f"Dashed: the learning-curve law (`scaling fit --curves`) fitted on the {len(fitted_curves)} curves "
        f"jointly; it misses the logged losses by {error.mean():.2%} on average, {error.max():.2%} at worst "
        f"({len(points)} points).\n"
    )


def _figures_section(
    figures: Mapping[str, Path], skipped: Mapping[str, str], captions: Mapping[str, str],
    titles: Mapping[str, str],
) -> str:
    text = ["## Figures\n"]
    for name, png in figures.items():
        text.append(
            f"### {titles[name]}\n\n![{titles[name]}](figures/{png.name}) "
            f"([PDF](figures/{png.stem}.pdf))\n"
        )
        if captions.get(name):
            text.append(captions[name])
    missing = [f"- {name}: {skipped[f'figure {name}']}" for name in titles if f"figure {name}" in skipped]
    if missing:
        text.append("Not drawn, because the data do not support them:\n\n" + "\n".join(missing) + "\n")
    return "\n".join(text)


# ---- the report ------------------------------------------------------------------------------------
def _figure_makers(an: Analysis) -> dict[str, tuple[str | None, Callable[[], Any]]]:
    """Figure name -> (why the data cannot support it, or None; how to draw it)."""
    as_trained = an.predictions.get(AS_TRAINED)
    return {
        "loss_vs_compute": (
            None,
            lambda: run_figures.plot_loss_vs_compute(
                an.table, an.fit, predictions=[as_trained] if as_trained else ()
            ),
        ),
        "isoflop_profiles": (
            an.skipped.get("approach 2"),
            lambda: study_figures.plot_isoflop_profiles(an.allocations[2]),
        ),
        "loss_vs_params": (None, lambda: run_figures.plot_loss_vs_params(an.table, an.fit)),
        "loss_vs_tokens": (None, lambda: run_figures.plot_loss_vs_tokens(an.table, an.fit)),
        "nd_plane": (None, lambda: run_figures.plot_nd_plane(an.fit, an.table, an.regimes)),
        "allocation": (
            None if an.allocations else "no approach applies",
            lambda: study_figures.plot_allocation(list(an.allocations.values())),
        ),
        "residuals": (None, lambda: run_figures.plot_residuals(an.table, an.fit)),
        "backtest": (an.skipped.get("backtest"), lambda: study_figures.plot_backtest(an.backtest, an.table)),
        "training_curves": (
            None if an.curves else "no run folder with a metrics.jsonl",
            lambda: run_figures.plot_training_curves(an.curves, an.table, an.regimes, an.fitted_curves),
        ),
        **{
            task_figures.figure_name(i): (None, lambda t=t: task_figures.plot_task(t))
            for i, t in enumerate(an.downstream.tasks if an.downstream else ())
        },
    }


def _figure_titles(an: Analysis) -> dict[str, str]:
    """Figure name -> title: the fixed figures' and one per downstream task."""
    tasks = an.downstream.tasks if an.downstream else ()
    return {**FIGURE_TITLES, **{task_figures.figure_name(i): task_figures.figure_title(t)
                                for i, t in enumerate(tasks)}}


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
    locked = read_only_folder(out_dir)
    if locked is not None:
        raise UsageError(
            f"{out_dir}: the report folder cannot be written ({locked} is read-only) and would be replaced "
            "as a whole; make it writable (chmod -R u+w) or choose another `out_dir`"
        )
    check_creatable(out_dir, "`out_dir`")  # before the analysis, which can take minutes
    parent = out_dir.resolve().parent
    if parent.is_dir():
        clean_leftovers(parent, out_dir.name)
    an = analyse(source, **options)
    skipped = dict(an.skipped)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging, lock = new_staging(parent, out_dir.name)
    except OSError as exc:
        raise error_at(exc, out_dir) from None
    try:
        (staging / "figures").mkdir()
        figures: dict[str, Path] = {}
        for name, (unsupported, make) in _figure_makers(an).items():
            if unsupported:
                skipped[f"figure {name}"] = unsupported
                continue
            fig = attempt(f"figure {name}", skipped, make, cannot=FigureNotSupported)
            if fig is not None:
                save_figure(fig, str(staging / "figures" / name), dpi=dpi)
                figures[name] = out_dir / "figures" / f"{name}.png"
        save_fit(an.fit, staging / "fit.json")
        an.table.to_csv(staging / "runs.csv", index=False)
        if an.regimes is not None:
            an.regimes.to_csv(staging / "regimes.csv", index=False)
        atomic_write_text(staging / "report.md", _markdown(an, figures, skipped, title))
        swap_in(staging, out_dir)
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
        _data_section(an.table, an.statuses, len(an.curves), an.allocations, an.recipes),
        _fit_section(an.fit, an.table),
        _allocation_section(an.allocations, skipped, an.fit),
        _regime_section(an.regimes, skipped, an.fit),
        _prediction_section(an.predictions, an.table, an.backtest, skipped),
        _backtest_section(an.backtest, skipped),
        _choice_section(an.fit, an.calibration, skipped),
        task_figures.section(an.downstream, skipped.get("downstream")),
        _figures_section(figures, skipped, {"training_curves": _curve_law_caption(an.fitted_curves)},
                         _figure_titles(an)),
    ]
    if an.warnings:
        sections.append("## Warnings\n\n" + "\n".join(f"- {n}" for n in an.warnings) + "\n")
    return "\n".join(sections)
