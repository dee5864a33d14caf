"""Curve tables from run folders and trackers: every evaluation of every run, with its LR schedule.

`collect_curves` builds what `scaling runs INPUT --curves` writes (docs/DESIGN.md, "Curve table"): many
rows per run, `run, N, step, tokens, lr, loss` (+ `lr_sum`, `D`, `N_total`, `U`, `status`, `parent` when
known), one row per (run, step), steps increasing.

- From a run folder: one row per evaluation (metrics.jsonl: `lr` is the LR of that step, `lr_sum` the LR
  summed over steps 1..step, `loss` the held-out loss) and one LR-only row (empty `loss`) per knot of
  schedule.json, the trainer's compact record of the LR of every step (linear interpolation between
  knots is within 1e-5 x peak of every step's LR). A branch's knots start at step 1, so its rows carry
  its parent's LR prefix; its losses are its own evaluations. A folder from before LR schedules (no
  schedule.json) gives its evaluations only.
- From a tracker: one row per logged loss, and one LR-only row per step of the logged LR series (`lr`,
  or `--map lr=KEY`); a loss step without a logged LR gets it interpolated linearly from the logged
  steps around it; tokens of LR-only steps are the loss rows' tokens per step times the step.

Rows past a run's last evaluation are left out (a running run's future schedule is not a record).
`scaling.runs.curves` reads and validates such a table; the schedule-aware laws fit it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning, UsageError
from scaling.runs.table import collect, read_metrics
from scaling.runs.trackers import CURVES, LR_SERIES

CURVE_COLUMNS = ("run", "N", "step", "tokens", "lr", "loss")
# run-table columns copied onto every row of their run, when the source knows them
RUN_COLUMNS = ("D", "N_total", "U", "status", "parent")


def _folder_rows(run_dir: Path) -> pd.DataFrame:
    """The rows of one run folder: its evaluations and its schedule's knots (module docstring)."""
    metrics = read_metrics(run_dir)
    if metrics.empty or "step" not in metrics:
        return pd.DataFrame()
    evals = pd.DataFrame(
        {
            "step": metrics["step"].astype(int),
            "tokens": metrics["tokens"],
            "lr": metrics.get("lr", np.nan),
            "loss": metrics.get("val_loss", np.nan),
            "lr_sum": metrics.get("lr_sum", np.nan),
        }
    )
    try:
        schedule = json.loads((run_dir / "schedule.json").read_text(encoding="utf-8"))
        knots = np.asarray(schedule["knots"], dtype=float).reshape(-1, 3)
        per_step = int(schedule["tokens_per_step"])
    except FileNotFoundError:
        return evals  # a run from before LR schedules: its evaluations' LR only
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{run_dir / 'schedule.json'}: unreadable ({exc}); delete it to list the "
                         "run's evaluations only") from None  # fmt: skip
    last = int(evals["step"].max())
    steps = knots[:, 0].astype(int)
    keep = (steps <= last) & ~np.isin(steps, evals["step"].to_numpy())
    lr_only = pd.DataFrame(
        {
            "step": steps[keep],
            "tokens": steps[keep] * per_step,
            "lr": knots[keep, 1],
            "loss": np.nan,
            "lr_sum": knots[keep, 2],
        }
    )
    return pd.concat([evals, lr_only], ignore_index=True).sort_values("step", kind="stable")


def _tracker_rows(curve: pd.DataFrame, lr_series: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of one tracker run: its loss curve and its logged LR series (module docstring)."""
    evals = pd.DataFrame(
        {
            "step": curve["step"].to_numpy(),
            "tokens": curve["tokens"].to_numpy(),
            "lr": curve["lr"].to_numpy() if "lr" in curve else np.nan,
            "loss": curve["val_loss"].to_numpy(),
        }
    )
    if lr_series is None or lr_series.empty:
        return evals
    known = lr_series.dropna().sort_values("step")
    missing = evals["lr"].isna()
    evals.loc[missing, "lr"] = np.interp(evals.loc[missing, "step"], known["step"], known["lr"])
    positive = evals["step"] > 0
    per_step = np.median(evals["tokens"][positive] / evals["step"][positive]) if positive.any() else np.nan
    last = evals["step"].max()
    extra = known[(known["step"] <= last) & ~known["step"].isin(evals["step"])]
    lr_only = pd.DataFrame(
        {"step": extra["step"], "tokens": extra["step"] * per_step, "lr": extra["lr"], "loss": np.nan}
    )
    return pd.concat([evals, lr_only], ignore_index=True).sort_values("step", kind="stable")


def collect_curves(
    source: str | Path,
    column_map: Mapping[str, str] | None = None,
    tracker: str | None = None,
    experiments: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The curve table of every run of a sweep folder or tracker store, in every state (column
    `status`), unvalidated: what `scaling runs --curves` writes.

    Parameters
    ----------
    source : a folder of run folders, or a tracker store (as `scaling.runs.table.collect`).
    column_map : {column: logged key} for a tracker, e.g. {"loss": "eval/loss", "lr": "train/lr"}.
    tracker, experiments : as `scaling.runs.table.collect`.

    Returns
    -------
    DataFrame with `run, N, step, tokens, lr, loss` (N params, tokens, loss in nats/token, empty on
    LR-only rows) and, when known, `lr_sum, D, N_total, U, status, parent`; sorted by run, then step.
    """
    table = collect(source, column_map, tracker, experiments)
    curves, series = table.attrs.get(CURVES) or {}, table.attrs.get(LR_SERIES) or {}
    frames, no_lr = [], []
    for row in table.to_dict("records"):
        run = row["run"]
        if run in curves:
            rows = _tracker_rows(curves[run], series.get(run))
        elif (Path(run) / "metrics.jsonl").is_file():
            rows = _folder_rows(Path(run))
        else:
            continue
        if rows.empty:
            continue
        if rows["lr"].isna().all():
            no_lr.append(str(run))
        rows.insert(0, "run", run)
        rows.insert(1, "N", row.get("N", np.nan))
        for column in RUN_COLUMNS:
            if column in row and pd.notna(row[column]):
                rows[column] = row[column]
        frames.append(rows)
    if not frames:
        raise UsageError(f"{source}: no run has logged an evaluation yet, so there are no learning curves")
    if no_lr:
        shown = ", ".join(no_lr[:5]) + (f" and {len(no_lr) - 5} more" if len(no_lr) > 5 else "")
        warnings.warn(
            f"{len(no_lr)} run(s) logged no learning rate, their lr column is empty (--map lr=KEY names "
            f"the logged key): {shown}",
            ScalingWarning,
            stacklevel=2,
        )
    out = pd.concat(frames, ignore_index=True)
    out["step"] = out["step"].astype(int)
    first = [c for c in (*CURVE_COLUMNS, "lr_sum", *RUN_COLUMNS) if c in out]
    out = out.sort_values(["run", "step"], kind="stable")
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)
