"""Hyperparameter laws: the optimal peak learning rate and batch size of each (N, D), as power laws.

From an LR x batch grid run at several (N, D) settings, `fit_hparams` finds each setting's optimum and fits

    lr_opt = c N^a D^b            (peak learning rate)
    B_opt  = c' N^g D^h           (tokens per optimizer step)

by least squares in log space, with bootstrap intervals over settings (Step Law, Li et al. 2025,
"Predictable Scale: Part I", fits the same forms: lr_opt = 1.79 N^-0.713 D^0.307, B_opt = 0.58 D^0.571).

Why a surface over the near-optimal runs: a grid spaced by factors of 2 puts its best run up to a factor
sqrt(2) from the optimum, noise picks among near-equal runs, and the law inherits both. Loss is close to
quadratic in (log lr, log batch) near the optimum but not far from it (a too-high LR diverges, a too-small
batch plateaus), so the quadratic is fitted only to the runs within `band` of the setting's best loss (the
"near-optimal set" Step Law averages over), widened in order of loss until it can hold a quadratic.
Its minimum interpolates between grid points; when the surface has no minimum (flat or saddle) or its minimum
lies outside the grid, the best run stands in and a warning says so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning, UsageError
from scaling.io import check_format
from scaling.recipe import HPARAMS_FORMAT as FORMAT  # one home: the trainer reads these files too
from scaling.recipe import auto_batch_size, auto_lr, read_hparam_laws
from scaling.shapes import Shape

BAND = 0.01  # near-optimal set: runs within 1 % of the setting's best loss
LEVEL = 0.95  # bootstrap interval
_LR_COLUMNS = ("lr", "train.lr")
_BATCH_COLUMNS = ("batch_size", "train.batch_size")
_CTX_COLUMNS = ("n_ctx", "model.n_ctx", "data.n_ctx")
SAME_D = 0.02  # runs of one N whose D differ by less than this fraction are one setting


@dataclass(frozen=True)
class PowerLaw:
    """value = coef N^exp_N D^exp_D (N params, D tokens); `ci` maps each field to its [low, high] interval."""

    coef: float
    exp_N: float
    exp_D: float
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __call__(self, N: float | np.ndarray, D: float | np.ndarray) -> float | np.ndarray:
        return self.coef * np.asarray(N, float) ** self.exp_N * np.asarray(D, float) ** self.exp_D

    def to_json(self) -> dict[str, Any]:
        return {"coef": self.coef, "exp_N": self.exp_N, "exp_D": self.exp_D,
                "ci": {k: list(v) for k, v in self.ci.items()}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PowerLaw:
        try:
            ci = {str(k): (float(v[0]), float(v[1])) for k, v in dict(obj.get("ci") or {}).items()}
            return cls(float(obj["coef"]), float(obj["exp_N"]), float(obj["exp_D"]), ci)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UsageError(f"not a power law {{coef, exp_N, exp_D, ci}}: {exc}") from None

    def __repr__(self) -> str:
        return f"PowerLaw({self.coef:.3g} N^{self.exp_N:.3f} D^{self.exp_D:.3f})"


@dataclass(frozen=True)
class Setting:
    """One (N, D) setting's optimum: lr (peak LR), batch (tokens per step), loss (nats/token)."""

    N: float
    D: float
    lr: float
    batch: float
    loss: float  # the surface's loss at its optimum, or the best run's
    best_loss: float  # the best run's loss
    runs: int
    method: str  # "surface" or "best run"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class HparamLaws:
    """The fitted lr_opt(N, D) and B_opt(N, D) laws and the per-setting optima they were fitted to."""

    lr: PowerLaw
    batch: PowerLaw
    settings: tuple[Setting, ...]
    band: float = BAND
    level: float = LEVEL

    def to_json(self) -> dict[str, Any]:
        """{"format", "lr": {coef, exp_N, exp_D, ci}, "batch": {... tokens}, "settings", "band", "level"}."""
        return {"format": FORMAT, "lr": self.lr.to_json(), "batch": self.batch.to_json(),
                "settings": [s.to_json() for s in self.settings], "band": self.band, "level": self.level}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HparamLaws:
        obj = check_format(obj, FORMAT, "a hyperparameter-law document (`scaling hparams --json`)")
        try:
            settings = tuple(Setting(**s) for s in obj.get("settings", []))
            return cls(PowerLaw.from_json(obj["lr"]), PowerLaw.from_json(obj["batch"]), settings,
                       float(obj.get("band", BAND)), float(obj.get("level", LEVEL)))
        except (KeyError, TypeError) as exc:
            raise UsageError(f"not a hyperparameter-law document: {exc}") from None

    def describe(self) -> str:
        def law(name: str, p: PowerLaw, unit: str) -> str:
            ci = "".join(f"\n    {k} in [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in p.ci.items())
            return f"{name} = {p.coef:.3g} N^{p.exp_N:.3f} D^{p.exp_D:.3f}{unit}{ci}"

        lines = [f"hyperparameter laws from {len(self.settings)} (N, D) settings "
                 f"({self.level:.0%} bootstrap intervals over settings):",
                 "  " + law("lr_opt", self.lr, ""), "  " + law("B_opt", self.batch, " tokens"),
                 f"  {'N':>9} {'D':>9} {'lr_opt':>9} {'B_opt':>9} {'loss':>8} {'best run':>8}  method"]
        for s in self.settings:
            lines.append(f"  {s.N:9.3g} {s.D:9.3g} {s.lr:9.3g} {s.batch:9.3g} {s.loss:8.4f} "
                         f"{s.best_loss:8.4f}  {s.method}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"HparamLaws(lr={self.lr!r}, batch={self.batch!r}, settings={len(self.settings)})"


def _column(table: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((c for c in names if c in table), None)


def hparam_table(table: pd.DataFrame) -> pd.DataFrame:
    """N, D, loss, lr and batch (tokens per step) of each run; UsageError when lr or batch is missing.

    batch comes from a `batch_tokens` column, else `batch_size` (sequences) x `n_ctx` (tokens each). D
    values of one N within SAME_D (2 %) of each other are made one (one setting's runs rounded to steps).
    """
    lr = _column(table, _LR_COLUMNS)
    if lr is None:
        raise UsageError("needs a learning-rate column lr (or train.lr)")
    if "batch_tokens" in table:
        batch = pd.to_numeric(table["batch_tokens"], errors="coerce")
    else:
        size, ctx = _column(table, _BATCH_COLUMNS), _column(table, _CTX_COLUMNS)
        if size is None or ctx is None:
            raise UsageError("needs a batch column: batch_tokens, or batch_size (sequences) and n_ctx")
        batch = pd.to_numeric(table[size], errors="coerce") * pd.to_numeric(table[ctx], errors="coerce")
    out = pd.DataFrame({"N": table["N"].astype(float), "D": table["D"].astype(float),
                        "loss": table["loss"].astype(float), "lr": pd.to_numeric(table[lr], errors="coerce"),
                        "batch": batch})
    bad = ~(np.isfinite(out[["lr", "batch"]]).all(axis=1) & (out[["lr", "batch"]] > 0).all(axis=1))
    if bad.any():
        warnings.warn(f"excluded {int(bad.sum())} run(s) with a missing or non-positive lr or batch",
                      ScalingWarning, stacklevel=2)
        out = out[~bad]
    over = out["batch"] > out["D"]
    if over.any():
        row = out[over].iloc[0]
        raise UsageError(f"{int(over.sum())} run(s) have a batch larger than their tokens, e.g. batch "
                         f"{row['batch']:.4g} tokens with D = {row['D']:.4g}: is batch in sequences? "
                         "give batch_tokens, or batch_size with n_ctx")
    out["D"] = _snap_tokens(out)
    return out.reset_index(drop=True)


def _snap_tokens(runs: pd.DataFrame) -> pd.Series:
    """D of each run, the D of runs of one N within SAME_D of each other replaced by their geometric mean.

    A sweep that rounds D to whole optimizer steps gives each batch size of one setting a slightly
    different D (6,086,656 and 6,094,848 tokens); they are one setting, not two.
    """
    snapped = runs["D"].copy()
    for _, group in runs.groupby("N"):
        order = group["D"].sort_values()
        cluster = (np.log(order).diff() > math.log1p(SAME_D)).cumsum()
        for _, members in order.groupby(cluster):
            snapped[members.index] = float(np.exp(np.log(members).mean()))
    return snapped


def _quadratic_terms(x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    if y is None:
        return np.column_stack([np.ones_like(x), x, x * x])
    return np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])


def setting_optimum(runs: pd.DataFrame, band: float = BAND) -> Setting:
    """The optimum of one (N, D) setting's runs (columns lr, batch, loss) from a quadratic surface.

    The surface L(log lr, log batch) is fitted to the runs within `band` of the best loss, widened in
    order of loss to at least as many runs as coefficients (6), spanning 3 learning rates and 3 batches; a
    grid of fewer than 3 batches gets a curve in log lr (3 coefficients) at the best run's batch. Falls back
    to the best run, with a ScalingWarning, when the surface has no minimum or its minimum lies outside the
    grid (a loss still falling at the grid's edge: the asymmetric far side must not pull the minimum in).
    """
    N, D = float(runs["N"].iloc[0]), float(runs["D"].iloc[0])
    runs = runs.sort_values("loss")
    best = runs.iloc[0]
    grid_x, grid_y = np.log(runs["lr"].to_numpy()), np.log(runs["batch"].to_numpy())
    if runs["batch"].nunique() < 3:  # no curvature in batch: fit log lr alone, at the best run's batch
        runs = runs[runs["batch"] == best["batch"]]
    # grow the near-optimal set by rank of loss until it spans 3 LRs (and 3 batches where the grid has them):
    # a quadratic needs 3 distinct values per variable to have a curvature
    two_d = runs["batch"].nunique() >= 3
    size = max(int((runs["loss"] <= best["loss"] * (1 + band)).sum()), 6 if two_d else 3)
    while size < len(runs) and (runs["lr"].iloc[:size].nunique() < 3
                                or runs["batch"].iloc[:size].nunique() < (3 if two_d else 1)):
        size += 1
    near = runs.iloc[:size]
    x, y = np.log(near["lr"].to_numpy()), np.log(near["batch"].to_numpy())
    where = f"setting N = {N:.3g}, D = {D:.3g}"

    def fallback(why: str) -> Setting:
        warnings.warn(f"{where}: {why}; using its best run (lr {best['lr']:.3g}, batch "
                      f"{best['batch']:.3g} tokens)", ScalingWarning, stacklevel=3)
        return Setting(N, D, float(best["lr"]), float(best["batch"]), float(best["loss"]),
                       float(best["loss"]), len(runs), "best run")

    if np.unique(x).size < 3:
        return fallback("fewer than 3 learning rates near the best loss, no surface to fit")
    terms = _quadratic_terms(x, y if two_d else None)
    coef, *_ = np.linalg.lstsq(terms, near["loss"].to_numpy(), rcond=None)
    if two_d:
        hessian = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
        if np.any(np.linalg.eigvalsh(hessian) <= 0):
            return fallback("the fitted surface has no minimum (flat or saddle)")
        opt = np.linalg.solve(hessian, -coef[1:3])
    else:
        if coef[2] <= 0:
            return fallback("the fitted curve in log lr has no minimum")
        opt = np.array([-coef[1] / (2 * coef[2]), math.log(best["batch"])])
    outside = [name for name, v, g in (("lr", opt[0], grid_x), ("batch", opt[1], grid_y))
               if not g.min() - 1e-9 <= v <= g.max() + 1e-9]
    if outside:
        return fallback(f"the optimum lies outside the grid in {' and '.join(outside)} (extend the grid)")
    at_best = (("lr", math.log(best["lr"]), grid_x), ("batch", math.log(best["batch"]), grid_y))
    edges = [name for name, v, g in at_best if np.unique(g).size >= 3 and v in (g.min(), g.max())]
    if edges:
        warnings.warn(f"{where}: the best run is at the grid's edge in {' and '.join(edges)}; the optimum "
                      "may lie outside the grid (extend the grid)", ScalingWarning, stacklevel=3)
    loss = float((_quadratic_terms(opt[:1], opt[1:] if two_d else None) @ coef)[0])
    return Setting(N, D, float(math.exp(opt[0])), float(math.exp(opt[1])), loss, float(best["loss"]),
                   len(runs), "surface")


def _fit_power(N: np.ndarray, D: np.ndarray, value: np.ndarray, use_D: bool) -> np.ndarray:
    """[log coef, exp_N, exp_D] of value = coef N^exp_N D^exp_D by least squares in logs."""
    columns = [np.ones_like(N), np.log(N)] + ([np.log(D)] if use_D else [])
    sol, *_ = np.linalg.lstsq(np.column_stack(columns), np.log(value), rcond=None)
    return np.append(sol, 0.0) if not use_D else sol


def _design_rank(N: np.ndarray, D: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(np.column_stack([np.ones_like(N), np.log(N), np.log(D)]), tol=1e-6))


def fit_hparams(
    table: pd.DataFrame, band: float = BAND, bootstrap: int = 1000, level: float = LEVEL, seed: int = 0,
) -> HparamLaws:
    """Fit lr_opt(N, D) and B_opt(N, D) from a run table with N, D, loss, lr and batch columns.

    Parameters
    ----------
    table : runs (N params, D tokens, loss nats/token, lr, batch_tokens or batch_size and n_ctx).
    band : near-optimal set of a setting: runs within this fraction of its best loss.
    bootstrap : resamples of the settings (with replacement) for the intervals; 0 for none.
    level : interval coverage.
    seed : random seed of the resampling.
    """
    runs = hparam_table(table)
    groups = [g for _, g in runs.groupby(["N", "D"], sort=True)]
    if len(groups) < 2:
        raise UsageError(f"needs runs at two or more (N, D) settings to fit a law, found {len(groups)}")
    single = [g for g in groups if g["lr"].nunique() < 2]
    if single:
        g = single[0]
        raise UsageError(f"{len(single)} setting(s) have a single learning rate (e.g. N = "
                         f"{g['N'].iloc[0]:.3g}, D = {g['D'].iloc[0]:.3g}); an optimum needs an LR sweep "
                         "at each setting")
    settings = tuple(setting_optimum(g, band) for g in groups)
    N = np.array([s.N for s in settings])
    D = np.array([s.D for s in settings])
    lr = np.array([s.lr for s in settings])
    batch = np.array([s.batch for s in settings])
    use_D = _design_rank(N, D) == 3
    if not use_D:
        warnings.warn("the settings' N and D lie on one line in log space (e.g. D = 20 N), so the N and D "
                      "exponents cannot be told apart; fitting N alone (exp_D = 0)", ScalingWarning,
                      stacklevel=2)
        if np.unique(N).size < 2:
            raise UsageError("the settings share one N; vary N across settings")
    fits = [_fit_power(N, D, v, use_D) for v in (lr, batch)]
    intervals: list[dict[str, tuple[float, float]]] = [{}, {}]
    if bootstrap and len(settings) <= (3 if use_D else 2):
        warnings.warn(f"no intervals: {len(settings)} settings fit the law exactly; run more settings",
                      ScalingWarning, stacklevel=2)
    elif bootstrap:
        rng = np.random.default_rng(seed)
        samples: list[list[np.ndarray]] = [[], []]
        for _ in range(bootstrap):
            pick = rng.integers(0, len(settings), len(settings))
            if (_design_rank(N[pick], D[pick]) == 3) if use_D else np.unique(N[pick]).size >= 2:
                for k, v in enumerate((lr, batch)):
                    samples[k].append(_fit_power(N[pick], D[pick], v[pick], use_D))
        tail = 100 * (1 - level) / 2
        for k in range(2):
            if len(samples[k]) >= 10:
                s = np.array(samples[k])
                s[:, 0] = np.exp(s[:, 0])
                lo, hi = np.percentile(s, [tail, 100 - tail], axis=0)
                intervals[k] = {name: (float(lo[i]), float(hi[i]))
                                for i, name in enumerate(("coef", "exp_N", "exp_D"))}
    laws = [PowerLaw(float(math.exp(f[0])), float(f[1]), float(f[2]), ci)
            for f, ci in zip(fits, intervals, strict=True)]
    return HparamLaws(laws[0], laws[1], settings, band, level)


# Which recipe set each run's peak LR and batch (the report's Data table says it): a run's saved config
# holds the values it trained with, not the `auto` or `law` that chose them, so each value is compared with
# what each recipe gives for the run's shape, N and D.
RECIPE, LAW, SET = "recipe", "law", "set"
RECIPE_USE_FORMAT = "scaling.recipe_use/1"
_SOURCE_TEXT = {RECIPE: "the fixed recipe (`auto`, scaling/recipe.py)",
                SET: "values set per run (neither recipe)"}
_SHAPE_COLUMNS = ("n_layer", "d_model", "n_head", "n_ctx")
_HPARAMS_COLUMNS = ("train.hparams", "hparams")
# A law's LR is computed from the requested D; the run records D rounded to whole steps (>= 10 of them),
# so the two may differ by up to 5 %, and an LR with exp_D ~ 0.3 by up to 1.5 %.
LAW_LR_TOLERANCE = 0.02


@dataclass(frozen=True)
class RecipeGroup:
    """Runs whose peak LR and batch came from the same sources: "recipe" (`auto`), "law" (the laws of the
    file `hparams`) or "set" (given per run: an LR x batch grid, a number)."""

    lr: str
    batch: str
    hparams: str | None
    runs: int

    def describe(self) -> str:
        def source(kind: str) -> str:
            return f"the hyperparameter laws of {self.hparams}" if kind == LAW else _SOURCE_TEXT[kind]

        what = (f"peak LR and batch from {source(self.lr)}" if self.lr == self.batch
                else f"peak LR from {source(self.lr)}, batch from {source(self.batch)}")
        return f"{self.runs} run{'s' if self.runs != 1 else ''}: {what}"


@dataclass(frozen=True)
class RecipeUse:
    """Which recipe chose the runs' hyperparameters: groups of runs by source, and each law file's laws
    (or why it cannot be read)."""

    groups: tuple[RecipeGroup, ...]
    laws: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """{"format", "groups": [{"lr", "batch", "hparams", "runs"}], "laws": {file: text}}."""
        return {"format": RECIPE_USE_FORMAT, "groups": [dict(g.__dict__) for g in self.groups],
                "laws": dict(self.laws)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecipeUse:
        obj = check_format(obj, RECIPE_USE_FORMAT, "a recipe-use document")
        try:
            return cls(tuple(RecipeGroup(**g) for g in obj["groups"]), dict(obj.get("laws") or {}))
        except (KeyError, TypeError) as exc:
            raise UsageError(f"not a recipe-use document: {exc}") from None

    def describe(self) -> str:
        lines = [g.describe() for g in self.groups]
        return "\n".join(lines + [f"{path}: {text}" for path, text in self.laws.items()])

    def __repr__(self) -> str:
        return f"RecipeUse({', '.join(f'{g.lr}/{g.batch}: {g.runs}' for g in self.groups)})"


def _law_file(path: str, cache: dict[str, Any]) -> Any:
    """The laws of a `scaling hparams --json` file (read once), or the UsageError saying why not."""
    if path not in cache:
        try:
            cache[path] = read_hparam_laws(path)
        except UsageError as exc:
            cache[path] = exc
    return cache[path]


def run_recipes(table: pd.DataFrame) -> pd.DataFrame | None:
    """Which recipe set each run's peak LR and batch size, from its saved config's columns.

    Needs the columns a sweep folder or `scaling runs` table has: N (non-embedding params), D (tokens),
    `train.lr`, `train.batch_size` (sequences), n_layer, d_model, n_head, n_ctx, and `train.hparams`
    where a law file was given. A value equal to what the fixed recipe (`scaling.recipe.auto_lr`,
    `auto_batch_size`) gives the run's shape, N and D is "recipe"; one equal to the laws of the run's
    `train.hparams` file (the LR within LAW_LR_TOLERANCE) is "law", checked first; any other is "set".
    Returns columns lr, batch (those kinds) and hparams (the law file, None unless a kind is "law"), one
    row per run of `table` (its index), with the law files read in `attrs["laws"]` ({path: laws or the
    UsageError saying why not}); None when a column or value is missing (a tracker or a bare run table
    does not record them).
    """
    lr_col, batch_col = _column(table, _LR_COLUMNS), _column(table, _BATCH_COLUMNS)
    if lr_col is None or batch_col is None or not all(c in table for c in _SHAPE_COLUMNS):
        return None
    hparams_col = _column(table, _HPARAMS_COLUMNS)
    columns = [*_SHAPE_COLUMNS, "N", "D", lr_col, batch_col]
    paths = table[hparams_col] if hparams_col else pd.Series(None, index=table.index, dtype=object)
    cache: dict[str, Any] = {}
    rows = []
    for values, path in zip(table[columns].itertuples(index=False), paths, strict=True):
        try:
            shape = Shape(*(int(v) for v in values[:4]))
            n, d, lr, batch = (float(v) for v in values[4:])
        except (TypeError, ValueError):  # a run without these values (a hand-made row): not recorded
            return None
        path = str(path) if isinstance(path, str) and path.strip() else None
        laws = _law_file(path, cache) if path else None
        readable = laws is not None and not isinstance(laws, UsageError)
        if readable and math.isclose(lr, laws.law_lr(n, d), rel_tol=LAW_LR_TOLERANCE):
            lr_kind = LAW
        else:
            lr_kind = RECIPE if math.isclose(lr, auto_lr(shape, n), rel_tol=1e-6) else SET
        if readable and batch == laws.law_batch_size(shape, n, d):
            batch_kind = LAW
        else:
            batch_kind = RECIPE if batch == auto_batch_size(shape, n, d) else SET
        if path and isinstance(laws, UsageError) and SET in (lr_kind, batch_kind):
            lr_kind, batch_kind = (LAW if k == SET else k for k in (lr_kind, batch_kind))  # cannot check
        rows.append((lr_kind, batch_kind, path if LAW in (lr_kind, batch_kind) else None))
    kinds = pd.DataFrame(rows, columns=["lr", "batch", "hparams"], index=table.index)
    kinds.attrs["laws"] = cache
    return kinds


def recipes_used(table: pd.DataFrame) -> RecipeUse | None:
    """The runs of `table` grouped by which recipe set their peak LR and batch (`run_recipes`), with each
    law file's laws; None when the table does not record them."""
    kinds = run_recipes(table)
    if kinds is None:
        return None
    counts = kinds.value_counts(dropna=False, sort=False)
    groups = tuple(RecipeGroup(lr, batch, None if pd.isna(path) else path, int(runs))
                   for (lr, batch, path), runs in sorted(counts.items(), key=lambda kv: -kv[1]))
    laws_text = {}
    for path in sorted({g.hparams for g in groups if g.hparams}):
        laws = kinds.attrs["laws"][path]
        if isinstance(laws, UsageError):
            laws_text[path] = f"cannot be read here ({laws}); its values were taken as the law's"
        else:
            (c, a, b), (c2, g, h) = laws.lr, laws.batch
            laws_text[path] = (f"lr_opt = {c:.3g} N^{a:.3f} D^{b:.3f}, "
                               f"B_opt = {c2:.3g} N^{g:.3f} D^{h:.3f} tokens")
    return RecipeUse(groups, laws_text)
