"""The pipeline of a report: `analyse` takes runs to every result a report shows, as one `Analysis`.

Stage by stage, each through the public API: the run table (`scaling.runs.table.load_runs`), the fit
(`scaling.fitting.procedure.fit`, or `scaling.fitting.select.fit_auto` for `law="auto"`), the
compute-optimal allocation by the three approaches (`scaling.study.allocation.allocate`), the backtest
and the rolling backtest of the fitted law, the regime labels (`scaling.study.regimes.classify`), the
GPT-3 175B predictions (`scaling.study.prediction.predict`) and the learning curves. Each result is
computed once and handed on; a part the data do not support is left out with the reason in
`Analysis.skipped`. `scaling.report.document` draws and writes what this returns.
Units: N non-embedding parameters, D tokens, C = 6 N D FLOPs, loss nats/token.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scaling.defaults import HOLDOUT_TOP
from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.backtest import BACKTEST_BOOTSTRAP, TRAIN_FRACTIONS, Backtest, backtest
from scaling.fitting.choice import CandidateScore
from scaling.fitting.curves import fit_curves
from scaling.fitting.data import use_params_column
from scaling.fitting.procedure import AUTO, fit
from scaling.fitting.result import FitResult
from scaling.fitting.select import fit_auto, score_of
from scaling.reference import GPT3_175B
from scaling.runs.curves import curves_from_metrics
from scaling.runs.table import ISOFLOP_TOLERANCE, collect_runs, curve_of, load_runs, one_row_per_run
from scaling.runs.tasks import accuracy_like, logged_columns, run_curves, task_columns
from scaling.runs.trackers import CURVES, Curves, detect
from scaling.study.allocation import DEFAULT_WINDOW, Allocation, allocate, check_profile_options
from scaling.study.downstream import DOWNSTREAM_BOOTSTRAP, DownstreamFit, fit_tasks
from scaling.study.hparams import RecipeUse, recipes_used
from scaling.study.prediction import Prediction, fitted_range, predict
from scaling.study.regimes import classify
from scaling.units import format_quantity

# the two predictions of a model of GPT-3 175B's size and shape
AS_TRAINED = f"as trained ({format_quantity(GPT3_175B.D)} tokens)"
OPTIMAL = f"compute-optimal for {format_quantity(GPT3_175B.N)}"
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
    # run -> the learning-curve law's fit of its curve (tokens, loss), when the curves log their LR
    fitted_curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    # which recipe set the runs' peak LR and batch (from their saved configs); None when not recorded
    recipes: RecipeUse | None = None
    downstream: DownstreamFit | None = None  # the tasks' accuracy laws, when the runs log tasks


def attempt(
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


def _with_curves(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`table` (its columns not copied) holding `curves` where `scaling.runs.table.curve_of` looks first,
    so no reader of learning curves reads them again; runs without a usable curve are read as before."""
    held = table.copy(deep=False)
    held.attrs[CURVES] = Curves({**table.attrs.get(CURVES, {}), **curves})
    return held


def _fitted_curves(curves: Mapping[str, pd.DataFrame], table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The learning-curve law (`scaling.fitting.curves`, its default for the sizes present) fitted on every
    logged curve with an LR, and its value along each: run -> (tokens, loss, observed). UsageError when the
    curves do not support a fit (no LR logged, two sizes)."""
    if "run" not in table:
        raise UsageError("no run names to match learning curves to")
    sizes = dict(zip(table["run"].astype(str), table["N"].astype(float), strict=True))
    logged = curves_from_metrics(curves, sizes)
    if not logged:
        raise UsageError("no learning curve with its LR (metrics.jsonl rows with lr)")
    law = fit_curves(logged)
    return {c.run: pd.DataFrame({"tokens": c.tokens, "loss": law.predict(c.schedule, c.steps, c.N),
                                 "observed": c.loss})
            for c in logged}


def _downstream(
    table: pd.DataFrame, tasks: Mapping[str, Any], bootstrap: int, seed: int
) -> DownstreamFit | None:
    """The tasks' fits (`scaling.study.downstream.fit_tasks`): of the columns `tasks` names, else of every
    column named like an accuracy (`scaling.runs.tasks.accuracy_like`); None when there is none. At most
    DOWNSTREAM_BOOTSTRAP resamples: each refits a loss law and a sigmoid per task."""
    curves = run_curves(table)
    accuracy = tasks.get("accuracy") or accuracy_like(logged_columns(table, curves))
    if not accuracy:
        return None
    resamples = min(bootstrap, DOWNSTREAM_BOOTSTRAP)
    held = _with_curves(table, curves)  # the curves just read: fit_tasks does not read them again
    return fit_tasks(held, **{**tasks, "accuracy": accuracy}, bootstrap=resamples, seed=seed)


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
        value = attempt(
            f"prediction {label}",
            skipped,
            lambda how=how: predict(result, N=GPT3_175B.preset, data_range=data_range, **how),
        )
        if value is not None:
            out[label] = value
    return out


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
    tasks: Mapping[str, Any] | None = None,
) -> Analysis:
    """Everything a report shows, for the runs of `source` (a sweep folder, a run-table CSV or a
    DataFrame). law: a law name or "auto" (rolling-backtest choice); params_column: "N" or "N_total",
    the parameter count the law reads. bootstrap: resamples for every 95 % interval (fit, allocations,
    predictions);
    holdout_top: fraction of the runs (by compute) the backtest holds out; isoflop_tolerance: relative
    compute difference of the runs of one IsoFLOP profile; profile_fit, window: how Approach 2 fits each
    profile (`scaling.study.allocation.allocate`). tasks: `scaling.study.downstream.fit_tasks`' column
    options (accuracy, task_loss, pair, chance) for the downstream section; without `accuracy`, every
    column named like an accuracy. UsageError when the runs cannot be fitted at all or a task column named
    is not in them; parts the data do not support are left out with the reason in `skipped`."""
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
        recipes = recipes_used(table)
        tasks = dict(tasks or {})
        if tasks.get("accuracy"):  # columns the user named must be there: refused now, not skipped
            task_columns(logged_columns(table, run_curves(table)), tasks["accuracy"], tasks.get("task_loss"))
        downstream = attempt("downstream", skipped, lambda: _downstream(table, tasks, bootstrap, seed))
        table = one_row_per_run(table)  # the tasks read every checkpoint; the loss laws, final losses
        final = {"bootstrap": bootstrap, "seed": seed, "params_column": params_column}
        result = fit_auto(table, **final) if law == AUTO else fit(table, law=law, **final)
        law = result.law
        table = use_params_column(table, params_column)  # from here on N is the count the law reads
        # Each run's learning curve is read once, here, and kept where every reader of curves looks first
        # (Approach 1's envelope, the regime labels); the figures draw them. An unreadable one fails the
        # analysis at its end, as it always has (after the parts that do not need it, warnings passed on).
        try:
            curves, unreadable = _curves(table), None
        except UsageError as exc:
            curves, unreadable = {}, exc
        table = _with_curves(table, curves)
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
            value = attempt(
                f"approach {approach}", skipped, lambda a=approach, e=extra: allocate(table, approach=a, **e)
            )
            if value is not None:
                allocations[approach] = value
        bt = attempt("backtest", skipped, lambda: backtest(table, law=law, holdout_top=holdout_top))
        calibration = None
        if result.selection is None:  # with --law auto the choice's table holds every law's calibration
            calibration = attempt("calibration", skipped, lambda: _calibration(table, law))
        labels = attempt("regimes", skipped, lambda: classify(table, result).labels)
        predictions = _predictions(result, table, skipped)
        fitted_curves = attempt("curve law", skipped, lambda: _fitted_curves(curves, table)) or {}
    notes = list(dict.fromkeys(str(w.message) for w in noted if issubclass(w.category, ScalingWarning)))
    for text in notes:  # each once, though the fit, the allocations and the backtest may each have said it
        warnings.warn(text, ScalingWarning, stacklevel=2)
    for w in noted:  # anything else (numpy's overflow notes, ...) passes on as it was, not in the report
        if not issubclass(w.category, ScalingWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if unreadable is not None:
        raise unreadable
    return Analysis(
        source=str(source) if not isinstance(source, pd.DataFrame) else "a DataFrame",
        table=table,
        fit=result,
        allocations=allocations,
        backtest=bt,
        calibration=calibration,
        regimes=labels,
        predictions=predictions,
        curves=curves,
        statuses=None if folders is None else folders["status"].astype(str).value_counts().to_dict(),
        skipped=skipped,
        warnings=notes,
        fitted_curves=fitted_curves,
        recipes=recipes,
        downstream=downstream,
    )


def _calibration(table: pd.DataFrame, law: str) -> CandidateScore:
    """The rolling backtest of `law` on all runs: its errors and the coverage of its intervals."""
    return score_of(backtest(table, law, rolling=TRAIN_FRACTIONS, bootstrap=BACKTEST_BOOTSTRAP))
