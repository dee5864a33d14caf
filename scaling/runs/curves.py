"""Curve tables: whole learning curves with their LR schedules, read and validated (many rows per run).

A curve table has the columns `run, N, step, tokens, lr, loss` (any others are ignored): one row per
logged step of a run, in increasing step order. A row with `loss` left empty only gives the LR at that step.
Between rows the LR is interpolated linearly. A run whose first row is not at step 0 starts with a linear
warmup from LR 0 at step 0 to its first row (the trainer's warmup rule, scaling.training.config, when the
first row is at or after the end of the warmup; give a row at step 0 to say otherwise).

Units: step counts optimizer updates, tokens are training tokens seen by that step, lr is the peak-scaled
learning rate of that step, loss is the held-out loss in nats/token, N non-embedding parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning, UsageError

CURVE_COLUMNS = ("run", "N", "step", "tokens", "lr", "loss")
SCHEDULE_COLUMNS = ("step", "tokens", "lr")
# runs whose curves a law must not read (a running or interrupted run's evaluations so far are kept)
BROKEN = ("diverged", "failed")


@dataclass(frozen=True, repr=False)
class Schedule:
    """A learning-rate schedule: LR `lrs[i]` at optimizer step `steps[i]` (knots from step 0, strictly
    increasing), linear in between. `area(t)` is the LR summed over steps 0..t (the paper's S_1 + S_W)."""

    steps: np.ndarray
    lrs: np.ndarray

    @classmethod
    def from_rows(cls, steps: np.ndarray, lrs: np.ndarray) -> Schedule:
        """The schedule through the given rows; without a row at step 0 it starts with a linear warmup
        from LR 0 at step 0 to the first row."""
        steps, lrs = np.asarray(steps, float), np.asarray(lrs, float)
        if steps[0] > 0:
            steps, lrs = np.r_[0.0, steps], np.r_[0.0, lrs]
        return cls(steps=steps, lrs=lrs)

    def __repr__(self) -> str:
        return f"Schedule({len(self.steps)} knots, steps 0..{self.steps[-1]:g}, peak lr {self.lrs.max():.3g})"

    def lr(self, step: np.ndarray) -> np.ndarray:
        """The LR at `step` (linear between knots, the last LR held after the last knot)."""
        return np.interp(step, self.steps, self.lrs)

    def area(self, step: np.ndarray) -> np.ndarray:
        """LR summed from step 0 to `step` (the exact integral of the piecewise-linear LR)."""
        cumulative = np.r_[0.0, np.cumsum(np.diff(self.steps) * (self.lrs[1:] + self.lrs[:-1]) / 2)]
        step = np.asarray(step, float)
        i = np.clip(np.searchsorted(self.steps, step, side="right") - 1, 0, len(self.steps) - 1)
        left = self.steps[i]
        return cumulative[i] + (step - left) * (self.lrs[i] + self.lr(step)) / 2

    @property
    def peak_step(self) -> float:
        """The first step at which the LR reaches its maximum (the end of the warmup)."""
        return float(self.steps[int(np.argmax(self.lrs))])


@dataclass(frozen=True, repr=False)
class Curve:
    """One run's learning curve: losses (nats/token) at `steps` (after the warmup) with their `tokens`,
    the run's LR `schedule` and size `N` (non-embedding parameters)."""

    run: str
    N: float
    schedule: Schedule
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray

    def __repr__(self) -> str:
        return f"Curve({self.run!r}, N={self.N:.3g}, {len(self.steps)} points to step {self.steps[-1]:g})"


def _read(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():  # run folders and trackers become a curve table through `scaling runs --curves`
        raise UsageError(f"{path}: a folder; give a {what} CSV (`scaling runs {path} --curves --csv FILE` "
                         "writes one from run folders or a tracker)")
    if not path.is_file():
        raise UsageError(f"{path}: no such file (expected a {what} CSV)")
    try:
        # empty cells stay NaN, the text "nan" too: an empty loss is an LR-only row, "nan" is an error
        return pd.read_csv(path, encoding="utf-8", skipinitialspace=True, keep_default_na=False,
                           na_values=[""], dtype=str)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: empty file (expected a {what} CSV with a header)") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UsageError(f"{path}: not a readable {what} CSV ({str(exc).strip()[:80]})") from None


def _numbers(frame: pd.DataFrame, column: str, where: str, *, optional: bool = False) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(float)
    bad = np.isnan(values) & raw.notna().to_numpy() & (raw.str.strip().str.lower() != "nan").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UsageError(f"{where}: column {column!r} must be numbers; row {i + 2} has {raw.iloc[i]!r}")
    missing = raw.isna().to_numpy()
    if not optional and missing.any():
        raise UsageError(f"{where}: column {column!r} is empty at row {int(np.flatnonzero(missing)[0]) + 2}")
    bad = ~np.isfinite(values) & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rule = ("a loss must be a finite number, or empty in a row that only gives the LR" if column == "loss"
                else "it must be a finite number")
        raise UsageError(f"{where}: {column} is {raw.iloc[i]} at row {i + 2} ({rule})")
    return values


def _check_steps(steps: np.ndarray, where: str, first_row: int = 2) -> None:
    if (steps < 0).any() or (steps != np.round(steps)).any():
        i = int(np.flatnonzero((steps < 0) | (steps != np.round(steps)))[0])
        raise UsageError(f"{where}: step {steps[i]:g} at row {first_row + i} is not a whole number >= 0")
    back = np.flatnonzero(np.diff(steps) <= 0)
    if len(back):
        i = int(back[0]) + 1
        kind = "repeated" if steps[i] == steps[i - 1] else "out of order"
        raise UsageError(f"{where}: step {steps[i]:g} at row {first_row + i} is {kind} (steps must increase "
                         "strictly, row after row)")


def read_schedule(path: str | Path) -> tuple[Schedule, np.ndarray, np.ndarray]:
    """A planned run's schedule CSV (`step, tokens, lr` per row, steps strictly increasing): the
    schedule, and each row's step and tokens."""
    table = _read(path, "schedule")
    missing = [c for c in SCHEDULE_COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(f"{path}: a schedule needs the columns step, tokens, lr; "
                         f"missing {', '.join(missing)}")
    if table.empty:
        raise UsageError(f"{path}: no rows (expected one row per planned step: step, tokens, lr)")
    steps, tokens, lrs = (_numbers(table, c, str(path)) for c in SCHEDULE_COLUMNS)
    _check_steps(steps, str(path))
    if (lrs < 0).any():
        raise UsageError(f"{path}: lr must be >= 0; row {int(np.flatnonzero(lrs < 0)[0]) + 2} is negative")
    return Schedule.from_rows(steps, lrs), steps, tokens


def load_curves(path: str | Path | pd.DataFrame) -> list[Curve]:
    """The curves of a curve-table CSV (or a DataFrame of one), validated: each run's rows in strictly
    increasing step order, LRs finite and >= 0, losses finite where given, one N per run, and losses
    after the warmup (rows before the LR's peak are schedule only: the laws describe the loss after it)."""
    if isinstance(path, pd.DataFrame):  # as text, as a CSV is read: an empty loss is NaN, "nan" is text
        table = path.astype(str).where(path.notna(), np.nan)
        path = "the curve table"
    else:
        table = _read(path, "curve table")
    missing = [c for c in CURVE_COLUMNS if c not in table.columns]
    if "lr" in missing:
        raise UsageError(f"{path}: no `lr` column; a curve table needs the LR at its steps (columns "
                         f"{', '.join(CURVE_COLUMNS)}); for final points only, fit without --curves")
    if missing:
        raise UsageError(f"{path}: a curve table needs the columns {', '.join(CURVE_COLUMNS)}; missing "
                         f"{', '.join(missing)}")
    unnamed = np.flatnonzero(table["run"].isna())
    if len(unnamed):
        raise UsageError(f"{path}: column 'run' is empty at row {int(unnamed[0]) + 2}")
    if "status" in table.columns:  # `scaling runs --curves` lists runs in every state
        broken = table["status"].isin(BROKEN)
        if broken.any():
            names = list(dict.fromkeys(table.loc[broken, "run"]))
            shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            warnings.warn(f"{len(names)} run(s) left out, their status is {' or '.join(BROKEN)}: {shown}",
                          ScalingWarning, stacklevel=2)
            table = table[~broken].reset_index(drop=True)
    columns = {c: _numbers(table, c, str(path), optional=c == "loss") for c in ("N", "step", "tokens", "lr")}
    columns["loss"] = _numbers(table, "loss", str(path), optional=True)
    curves = []
    for run, rows in table.groupby("run", sort=False).indices.items():
        where = f"{path}: run {run!r}"
        steps, lrs, loss = columns["step"][rows], columns["lr"][rows], columns["loss"][rows]
        _check_steps(steps, where, first_row=int(rows[0]) + 2)
        sizes = np.unique(columns["N"][rows])
        if len(sizes) != 1 or sizes[0] <= 0:
            raise UsageError(f"{where}: N must be one positive number per run "
                             f"(has {', '.join(map(str, sizes[:3]))})")
        if (lrs < 0).any():
            raise UsageError(f"{where}: lr must be >= 0 (row {int(rows[np.argmax(lrs < 0)]) + 2})")
        schedule = Schedule.from_rows(steps, lrs)
        rising = schedule.lrs[-1] > schedule.lrs[-2]  # the LR still climbs at the last row: all warmup
        points = np.isfinite(loss) & (steps >= schedule.peak_step) & ~rising
        if not points.any():
            has = ("no loss" if not np.isfinite(loss).any()
                   else "losses only during the warmup (LR still rising)")
            raise UsageError(f"{where}: has {has}; a curve needs losses after the LR's peak")
        curves.append(Curve(run=str(run), N=float(sizes[0]), schedule=schedule, steps=steps[points],
                            tokens=columns["tokens"][rows][points], loss=loss[points]))
    if not curves:
        raise UsageError(f"{path}: no rows (expected one row per logged step: {', '.join(CURVE_COLUMNS)})")
    return curves


def curves_from_metrics(metrics: Mapping[str, pd.DataFrame], sizes: Mapping[str, float]) -> list[Curve]:
    """The curves of run folders' evaluations (metrics.jsonl: step, tokens, lr, val_loss) for the runs
    named in `sizes` (run -> N): the LR linear between evaluations, warmup from LR 0 at step 0, losses after
    the LR's peak. Runs without an `lr` series, with steps out of order, or with fewer than 3 such losses
    are left out (a report draws what it can)."""
    curves = []
    for run, frame in metrics.items():
        if run not in sizes or not {"step", "tokens", "lr", "val_loss"} <= set(frame.columns):
            continue
        frame = frame[np.isfinite(frame["lr"].astype(float)) & (frame["step"].astype(float) > 0)]
        steps = frame["step"].to_numpy(float)
        if len(steps) < 3 or (np.diff(steps) <= 0).any() or (frame["lr"] < 0).any():
            continue
        schedule = Schedule.from_rows(steps, frame["lr"].to_numpy(float))
        loss = frame["val_loss"].to_numpy(float)
        points = np.isfinite(loss) & (loss > 0) & (steps >= schedule.peak_step)
        if points.sum() >= 3:
            curves.append(Curve(run=str(run), N=float(sizes[run]), schedule=schedule, steps=steps[points],
                                tokens=frame["tokens"].to_numpy(float)[points], loss=loss[points]))
    return curves
