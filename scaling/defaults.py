"""The library's documented defaults and choices, in one module that imports no numpy, pandas or scipy,
so that the command line shows them (`--help`) without loading the analysis. Each is re-exported by the
module that uses it (`scaling.fitting.objective.HUBER_DELTA`, ...)."""

from __future__ import annotations

from typing import Any

from scaling.shapes import Shape

# ---- fitting ---------------------------------------------------------------------------------------
HUBER_DELTA = 1e-3
HOLDOUT_TOP = 0.2  # the fraction of runs (by compute) a backtest holds out, by default
METHODS = ("profile", "classic")  # our global search; Hoffmann et al.'s grid (comparison only)
# Resamples of the runs behind a downstream task's 95 % intervals: each refits both steps (a loss law and
# a sigmoid). 200: within 4-5 % of its width of 1000 resamples' interval at 0.23 of the time on the OLMo
# ladder, 6-9 % seed-to-seed on the tests' synthetic ladder (bench/downstream_bootstrap.py, docs/results.md).
DOWNSTREAM_BOOTSTRAP = 200

# ---- run tables and allocation ----------------------------------------------------------------------
ISOFLOP_TOLERANCE = 0.01  # runs whose compute (size, tokens) differs by at most 1 % share that value
PROFILE_FITS = ("window", "akima", "parabola")
# Sizes per local parabola, chosen on 16 published sweeps and synthetic ones (docs/planning.md table,
# analysis/isoflop_exponents.py): with 3 the noise of 3 points moves the vertex, with 9 or the whole
# profile the far sides pull it; 5 had the smallest worst case on the published sweeps.
DEFAULT_WINDOW = 5

# ---- planning --------------------------------------------------------------------------------------
# Defaults of `plan` and `scaling plan`.
# - Runs of 10M to 3B parameters: within the sizes published laws were fitted on (Hoffmann et al. 2022:
#   70M to 16B; Kaplan et al. 2020 from ~1M), up to what one node trains in days.
# - 40 runs: the size of a published sweep (Hoffmann et al.'s IsoFLOP profiles: 9 budgets x ~10 sizes).
# - At most 2 runs of one (N, D): the c-optimal design piles runs on a handful of points (21 of 40 on one
#   point in docs/planning.md's example), which bets everything on the law's form; 2 keeps ~20 distinct
#   points for 8 % more variance.
# - n_ctx: the default of scaling.shapes.
# - noise: the run-to-run spread of a final loss (seeds, data order), ~1 % for small language models;
#   only the interval widths scale with it, the plan does not depend on it.
PLAN_DEFAULTS: dict[str, Any] = {
    "min_params": 1e7,
    "max_params": 3e9,
    "max_runs": 40,
    "max_repeats": 2,
    "n_ctx": Shape.n_ctx,
    "noise": 0.01,
}
