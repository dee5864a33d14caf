"""Planning the next sweep: the runs that most sharpen the prediction at a target, for a compute budget.

Optimal experimental design (c-optimality) for one number, the log-loss a law predicts at the target
(N_t params, D_t tokens). A fit of log-losses with run-to-run noise sigma (relative, 1 % by default) has,
to first order, the covariance sigma^2 M^-1 with the Fisher information M = sum_runs J J^T (J: the law's
Jacobian of log-loss in its parameters theta, analytic in `scaling.fitting.laws`), so the predicted log-loss
at the target has the variance

    Var = sigma^2 g^T M^-1 g,     g = d log L(N_t, D_t) / d theta.

The planner chooses runs (and how many of each) among candidates that can be trained as they are (GPT
shapes from `scaling.shapes`, token budgets of whole batches of at least `recipe.MIN_STEPS` optimizer
steps, as `scaling-train` would run them) to make Var smallest with their training FLOPs (6 N D and
attention) within the budget, and enough distinct sizes and token counts to identify the law. J and g
depend on the law's parameters, which are what we do not know yet: Var is averaged over the prior's
uncertainty (its bootstrap samples, or Epoch AI's refit of Chinchilla when no prior is given), so the plan
does not bet on one guess. Runs already trained add their information to M (sequential design).

The search: a convex relaxation (run counts as real numbers; the criterion is convex in them) solved by
Frank-Wolfe over scipy's linear programs (HiGHS), rounded to whole runs, then improved by exchanges of
single runs until no exchange helps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import optimize

from scaling import hardware
from scaling.defaults import PLAN_DEFAULTS
from scaling.errors import NON_NEGATIVE, Constraint, ScalingWarning, UsageError, checked, whole_number
from scaling.fitting.laws import Inputs, Law, get_law
from scaling.fitting.result import FitResult
from scaling.io import check_format
from scaling.recipe import AUTO_MIN_BATCH, MIN_STEPS, HparamLawFile, auto_batch_size, read_hparam_laws
from scaling.reference import tokens_for_compute, training_flops
from scaling.runs.table import load_runs
from scaling.shapes import Shape, n_params, shape_for_params
from scaling.study.prediction import check_sensible, resolve_params
from scaling.study.prior import Z95, Prior, planning_law
from scaling.units import count, format_quantity, parse_quantity

FORMAT = "scaling.plan/1"  # the "format" key of `SweepPlan.to_json`

# Candidate runs stay where scaling laws are fitted: 1 to 1000 tokens per parameter. Hoffmann et al.'s runs
# (Epoch's extraction, data/README.md) lie between 1.1 and 160 (5-95 %), all below 350; the top is left
# wider because small models are cheap to train long. Below 1, learning-rate warmup and the first steps
# dominate, which the law does not describe.
TOKENS_PER_PARAM = (1.0, 1000.0)
CANDIDATE_SIZES = 16  # model sizes, log-spaced over [min_params, max_params]
CANDIDATE_TOKENS = 16  # token budgets per size, log-spaced over what the budget and the range allow ...
CANDIDATE_SPACING = 1.1  # ... at least 10 % apart (closer runs add nothing and would share a name)
MIN_RUNS = 3
# A fit of the runs must identify the law: each of its power laws (a scale, an exponent, the shared offset)
# needs 3 distinct values of its input, and the design p distinct (N, D) points for p parameters.
IDENTIFY_VALUES = 3
# A weak Gaussian prior, sd 10 on every theta (log-scales and exponents), only keeps M invertible while a
# design is still too small to identify the law; any design that identifies it is unaffected.
RIDGE = 1e-2
# A fit at the edge of its search box (within this fraction of the box) stopped there, not at a minimum.
AT_BOUND = 1e-3

# The standard design a plan is compared with: IsoFLOP profiles (Hoffmann et al. 2022, Approach 2).
ISOFLOP_BUDGETS = 4  # compute budgets ...
ISOFLOP_SPACING = 4.0  # ... 4x apart
ISOFLOP_SIZES = 5  # model sizes per budget ...
ISOFLOP_HALF_WIDTH = 0.6  # ... log-spaced within +-0.6 decade of N_opt(C)


# ---- the prior fit ---------------------------------------------------------------------------------
def check_prior_fit(fit_result: FitResult, *, allow_unconverged: bool = False, optimal: bool = False) -> None:
    """UsageError unless `fit_result` is an estimate to plan from: converged (or `allow_unconverged`, then
    a ScalingWarning), no parameter at the edge of the fit's search box (E -> 0, an exponent at 5: a
    degenerate law whose plans are absurd, e.g. 1e48 tokens for a compute-optimal target), and, for an
    `optimal` target, fitted to runs that identify the compute-optimal allocation."""
    if not fit_result.converged:
        if not allow_unconverged:
            raise UsageError(
                f"the prior fit did not converge ({fit_result.message or 'no message'}); refit it "
                "(more runs, or --law chinchilla) before planning from it, or give `allow_unconverged`"
            )
        warnings.warn(
            f"planning from a {fit_result.law} fit that did NOT converge: treat the plan with care",
            ScalingWarning, stacklevel=3,
        )
    if optimal and not fit_result.identifies_allocation:
        fit_result.require_compute_optimal()  # raises: the runs behind it do not identify D_opt
    law = planning_law(fit_result.law)
    theta = law.to_theta(fit_result.params)
    low, high = law.theta_bounds()
    margin = AT_BOUND * (high - low)
    edge = [n for n, t, lo, hi, m in zip(law.param_names, theta, low, high, margin, strict=True)
            if t <= lo + m or t >= hi - m]  # fmt: skip
    if edge:
        shown = ", ".join(f"{n} = {fit_result.params[n]:.3g}" for n in edge)
        raise UsageError(
            f"the prior fit has {shown} at the bound of the fit's search: the law is degenerate there, not "
            "estimated; refit it on more runs (or plan without `prior`, from Epoch AI's Chinchilla refit)"
        )


# ---- candidate runs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A run `scaling-train` can train as it is: its shape, D tokens in `steps` whole batches.

    Its cost is `flops`, what training it computes: 6 N D and the attention scores, 6 n_layer n_ctx d_model
    per token (`hardware.training_flops_with_attention`; 4.7x 6 N D for a small model at n_ctx 100k)."""

    shape: Shape
    N: int  # non-embedding parameters
    D: int  # tokens: steps x batch_size x n_ctx
    batch_size: int  # sequences per optimizer step
    steps: int

    @property
    def C(self) -> float:
        return training_flops(self.N, self.D)

    @property
    def flops(self) -> float:
        return self.D * flops_per_token(self.shape)


def flops_per_token(shape: Shape) -> float:
    """Training FLOPs per token of a model of `shape`, attention scores included."""
    return hardware.training_flops_with_attention(
        n_params(shape), 1.0, shape.n_layer, shape.n_ctx, shape.d_model
    )


def realise(shape: Shape, tokens: float, laws: HparamLawFile | None = None) -> Candidate | None:
    """The run of `shape` on about `tokens` tokens as the trainer runs it (its auto batch size, or the
    batch of `laws` as `train.batch_size=law` gives it; whole steps), or None when that is fewer than the
    trainer's minimum of optimizer steps."""
    N = n_params(shape)
    batch = laws.law_batch_size(shape, N, tokens) if laws else auto_batch_size(shape, N, tokens)
    steps = round(tokens / (batch * shape.n_ctx))
    if steps < MIN_STEPS:
        return None
    return Candidate(shape, N, steps * batch * shape.n_ctx, batch, steps)


def smallest_run(min_params: float, n_ctx: int, laws: HparamLawFile | None = None) -> Candidate:
    """The cheapest candidate: the smallest model on the fewest tokens the trainer accepts."""
    shape = shape_for_params(min_params, n_ctx=n_ctx)
    tokens = max(TOKENS_PER_PARAM[0] * n_params(shape), MIN_STEPS * AUTO_MIN_BATCH * n_ctx)
    run = realise(shape, tokens, laws)
    assert run is not None  # the minimum batch makes MIN_STEPS steps of these tokens
    return run


def candidate_runs(
    budget: float, min_params: float, max_params: float, n_ctx: int, laws: HparamLawFile | None = None
) -> list[Candidate]:
    """Runs on a log grid of sizes and token budgets, each affordable within `budget` FLOPs alone."""
    shapes = {shape_for_params(n, n_ctx=n_ctx) for n in np.geomspace(min_params, max_params, CANDIDATE_SIZES)}
    smallest = smallest_run(min_params, n_ctx, laws).D
    runs: dict[tuple[Shape, int], Candidate] = {}
    for shape in sorted(shapes, key=n_params):
        N = n_params(shape)
        lo = max(TOKENS_PER_PARAM[0] * N, smallest)
        hi = min(TOKENS_PER_PARAM[1] * N, budget / flops_per_token(shape))
        if hi < lo:
            continue
        budgets = min(CANDIDATE_TOKENS, 1 + math.floor(math.log(hi / lo) / math.log(CANDIDATE_SPACING)))
        for tokens in np.geomspace(lo, hi, budgets):
            run = realise(shape, tokens, laws)
            if run is not None and budget >= run.flops:
                runs[(shape, run.D)] = run
    return list(runs.values())


# ---- the criterion -------------------------------------------------------------------------------------
class TargetVariance:
    """Var(log L at the target) of a design, averaged over prior samples: sigma^2 mean_k g_k^T M_k^-1 g_k.

    Parameters
    ----------
    law, thetas : the law and prior samples of its theta (K, p).
    N, D : the candidate runs (params, tokens), shape (n,).
    target : (N_t params, D_t tokens).
    noise : relative run-to-run noise sigma of a loss (log-loss standard deviation).
    known : (N, D) of runs already trained, whose information every design starts with.
    """

    def __init__(
        self,
        law: Law,
        thetas: np.ndarray,
        N,
        D,
        target: tuple[float, float],
        noise: float,
        known: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.noise = noise
        self.J = law.jacobian(thetas, Inputs.make(N=np.asarray(N, float), D=np.asarray(D, float)))[1]
        _, g = law.jacobian(thetas, Inputs.make(N=[target[0]], D=[target[1]]))
        self.g = g[:, 0, :]  # (K, p)
        p = self.g.shape[-1]
        self.M0 = np.broadcast_to(RIDGE * np.eye(p), (len(thetas), p, p)).copy()
        if known is not None and len(known[0]):
            Jk = law.jacobian(thetas, Inputs.make(N=known[0], D=known[1]))[1]
            self.M0 += np.matmul(np.swapaxes(Jk, -1, -2), Jk) / noise**2

    def information(self, counts: np.ndarray) -> np.ndarray:
        """M_k for run counts (n,) of the candidates: (K, p, p)."""
        weighted = self.J * (np.asarray(counts, float) / self.noise**2)[None, :, None]
        return self.M0 + np.matmul(np.swapaxes(weighted, -1, -2), self.J)

    def per_sample(self, counts: np.ndarray) -> np.ndarray:
        """Var(log L_t) under each prior sample, (K,)."""
        M = self.information(counts)
        return np.einsum("kp,kp->k", self.g, np.linalg.solve(M, self.g[..., None])[..., 0])

    def __call__(self, counts: np.ndarray) -> float:
        return float(self.per_sample(counts).mean())

    def gradient(self, counts: np.ndarray) -> np.ndarray:
        """d mean Var / d count_i, (n,): -mean_k (J_ki^T M_k^-1 g_k)^2 / sigma^2."""
        h = np.linalg.solve(self.information(counts), self.g[..., None])[..., 0]  # (K, p)
        u = np.einsum("knp,kp->kn", self.J, h)
        return -(u**2).mean(0) / self.noise**2


@dataclass(frozen=True)
class Limits:
    """What a design may use: `budget` FLOPs (attention included), `max_runs` runs, `max_repeats` runs of one
    (N, D) (replicates with other seeds)."""

    budget: float
    max_runs: int
    max_repeats: int


def _relaxed(crit: TargetVariance, cost: np.ndarray, limits: Limits, iterations: int = 60) -> np.ndarray:
    """Real-valued run counts minimising the criterion within the limits.

    Frank-Wolfe: the linear problem over the limits (a linear program, solved by HiGHS) gives the
    direction, a line search the step; the criterion is convex, so this approaches the optimum (to a
    fraction of a percent in 60 steps, which the exchanges of whole runs then polish)."""
    n = cost.size
    rows = np.vstack([cost / limits.budget, np.ones(n) / limits.max_runs])
    x = np.full(n, min(limits.budget / cost.sum(), limits.max_runs / n))  # equal counts, within limits
    for _ in range(iterations):
        vertex = optimize.linprog(
            crit.gradient(x), A_ub=rows, b_ub=np.ones(2), bounds=(0, limits.max_repeats), method="highs"
        ).x
        step = vertex - x
        line = optimize.minimize_scalar(
            lambda t, x=x, step=step: crit(x + t * step),
            bounds=(0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-3},
        )
        x = np.maximum(x + line.x * step, 0.0)
    return x


def _rounded(x: np.ndarray, cost: np.ndarray, limits: Limits) -> np.ndarray:
    """Whole runs from real counts: the whole parts, then single runs by largest remainder while they fit."""
    counts = np.minimum(np.floor(x + 1e-9), limits.max_repeats).astype(int)
    while counts @ cost > limits.budget or counts.sum() > limits.max_runs:  # the relaxation's rounding
        counts[np.flatnonzero(counts)[np.argmax(cost[counts > 0])]] -= 1
    for i in np.argsort(-(x - counts)):
        if x[i] - counts[i] < 1e-3:
            break
        fits = counts @ cost + cost[i] <= limits.budget and counts.sum() < limits.max_runs
        if fits and counts[i] < limits.max_repeats:
            counts[i] += 1
    return counts


def _exchanged(
    crit: TargetVariance,
    counts: np.ndarray,
    cost: np.ndarray,
    limits: Limits,
    keep: Callable[[np.ndarray], bool] | None = None,
    max_moves: int = 400,
) -> np.ndarray:
    """Improve whole-run counts by single moves (add a run, or move one run elsewhere) while one helps;
    with `keep`, only moves whose design without the moved run keeps `keep` true.

    Each move is evaluated exactly for every candidate at once with Sherman-Morrison updates of M^-1."""
    counts = counts.copy()
    s2 = crit.noise**2
    J = crit.J
    for _ in range(max_moves):
        Minv = np.linalg.inv(crit.information(counts))
        best, move = crit(counts) * (1 - 1e-9), None
        spent, n_runs = counts @ cost, counts.sum()
        for r in [None, *np.flatnonzero(counts)]:
            if r is None:
                inv = Minv
                room, runs_left = limits.budget - spent, limits.max_runs - n_runs
            else:  # remove one run r: M - J_r J_r^T / s2
                if keep is not None and not keep(counts - np.eye(counts.size, dtype=int)[r]):
                    continue
                v = np.einsum("kpq,kq->kp", Minv, J[:, r])
                denom = s2 - np.einsum("kp,kp->k", J[:, r], v)
                if np.any(denom <= 0):
                    continue
                inv = Minv + np.einsum("kp,kq->kpq", v, v) / denom[:, None, None]
                room, runs_left = limits.budget - spent + cost[r], limits.max_runs - n_runs + 1
            if runs_left < 1:
                continue
            h = np.einsum("kpq,kq->kp", inv, crit.g)  # M^-1 g
            base = np.einsum("kp,kp->k", crit.g, h)
            u = np.einsum("knp,kp->kn", J, h)
            w = np.einsum("knp,kpq,knq->kn", J, inv, J)
            value = (base[:, None] - u**2 / (s2 + w)).mean(0)
            value[(cost > room) | (counts >= limits.max_repeats)] = np.inf
            if r is not None:
                value[r] = np.inf
            j = int(np.argmin(value))
            if value[j] < best:
                best, move = value[j], (r, j)
        if move is None:
            break
        r, j = move
        if r is not None:
            counts[r] -= 1
        counts[j] += 1
    return counts


def identifying(
    crit: TargetVariance,
    counts: np.ndarray,
    cost: np.ndarray,
    limits: Limits,
    points: tuple[np.ndarray, np.ndarray],
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """`counts` if the design and the runs `known` identify the law (IDENTIFY_VALUES distinct N and D, as
    many distinct (N, D) points as it has parameters); else the best design that does. A c-optimal design
    may put every run on two sizes (for a point prior most of all), which no fit can untangle.

    The repair: cheap runs that complete the support (each the cheapest of those that fill most gaps), then
    the runs of `counts` while they fit,
    then exchanges that keep the law identified. Raises UsageError when the limits cannot buy it."""
    N, D = points
    base = [] if known is None else list(zip(*known, strict=True))
    p = crit.g.shape[-1]

    def lacking(c: np.ndarray) -> int:
        support = base + [(N[i], D[i]) for i in np.flatnonzero(c)]
        sizes, tokens = {n for n, _ in support}, {d for _, d in support}
        return (max(0, IDENTIFY_VALUES - len(sizes)) + max(0, IDENTIFY_VALUES - len(tokens))
                + max(0, p - len(set(support))))  # fmt: skip

    if lacking(counts) == 0:
        return counts
    design, steps = np.zeros_like(counts), np.eye(counts.size, dtype=int)
    while (short := lacking(design)) > 0:  # the run that fills most gaps, the cheapest of those
        gain, j = max((short - lacking(design + steps[j]), -cost[j], j) for j in range(counts.size))[::2]
        if gain == 0:
            break
        design[j] += 1
    if lacking(design) or design @ cost > limits.budget or design.sum() > limits.max_runs:
        raise UsageError(
            f"the limits buy no design that identifies the law ({IDENTIFY_VALUES} distinct sizes and token "
            f"counts, {p} distinct (N, D) points, runs so far included); raise `budget` or `max_runs`, or "
            "lower `min_params`"
        )
    for j in np.flatnonzero(counts):
        while design[j] < counts[j] and design.sum() < limits.max_runs:
            if design @ cost + cost[j] > limits.budget:
                break
            design[j] += 1
    return _exchanged(crit, design, cost, limits, keep=lambda c: lacking(c) == 0)


def optimal_design(crit: TargetVariance, cost: np.ndarray, limits: Limits) -> np.ndarray:
    """Whole run counts (n,) of the candidates minimising `crit` within the limits."""
    return _exchanged(crit, _rounded(_relaxed(crit, cost, limits), cost, limits), cost, limits)


# ---- the standard design -------------------------------------------------------------------------------
def isoflop_design(
    law: Law, params: Mapping[str, float], total: float, min_params: float = 0.0, max_params: float = math.inf
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) of the standard IsoFLOP design of `total` FLOPs (6 N D): ISOFLOP_BUDGETS budgets
    ISOFLOP_SPACING x apart, ISOFLOP_SIZES sizes each, log-spaced within +-ISOFLOP_HALF_WIDTH decade of
    N_opt(C), that window moved into [min_params, max_params] (the whole range when it is narrower)."""
    optimal = law.compute_optimal(params)  # planning laws are laws of N and D
    shares = ISOFLOP_SPACING ** -np.arange(ISOFLOP_BUDGETS)[::-1]  # ..., 1/16, 1/4, 1
    budgets = total * shares / (ISOFLOP_SIZES * shares.sum())
    span = min(10.0 ** (2 * ISOFLOP_HALF_WIDTH), max_params / min_params) if min_params > 0 else None
    sizes = []
    for C in budgets:
        low = optimal.N_opt(C) * 10.0**-ISOFLOP_HALF_WIDTH
        if span is None:
            sizes.append(low * 10.0 ** np.linspace(0, 2 * ISOFLOP_HALF_WIDTH, ISOFLOP_SIZES))
        else:
            low = min(max(low, min_params), max_params / span)
            sizes.append(low * np.geomspace(1.0, span, ISOFLOP_SIZES))
    N = np.concatenate(sizes)
    return N, tokens_for_compute(np.repeat(budgets, ISOFLOP_SIZES), N)


# ---- the plan ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProposedRun:
    """One run a sweep plan proposes: N params, D tokens, C = 6 N D FLOPs, its GPT shape, batch, seed,
    GPU-hours. (Not `scaling.training`'s `RunPlan`, one run's validated configuration, nor its
    `PlannedRun`, a run of a sweep being launched.)"""

    name: str  # its key in the sweep file, e.g. N12.6M_D2.52B_s0
    N: int
    D: int
    C: float  # 6 N D, the law's compute
    flops: float  # what training computes, attention scores included: what the budget and hours count
    n_layer: int
    d_model: int
    n_head: int
    n_ctx: int
    batch_size: int  # sequences per optimizer step
    steps: int
    seed: int  # replicates of one (N, D) differ in their seed
    gpu_hours: float  # on the plan's accelerator at its MFU

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ProposedRun:
        return cls(**{"flops": obj["C"], **obj})  # a plan written before `flops` counted 6 N D alone


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a sweep that most sharpen the target prediction within a budget, and what they buy.

    Interval widths are of the 95 % interval of the target loss (nats/token) that a fit of the runs is
    expected to give (first-order, run-to-run noise `noise`, averaged over the prior's uncertainty).
    JSON (`to_json`, `from_json`) keeps everything but the (N, D) of the runs so far, of which it keeps
    their count (`n_runs_so_far`).
    """

    runs: tuple[ProposedRun, ...]
    budget: float  # FLOPs allowed, attention included
    spent: float  # FLOPs of the runs, attention included (the sum of their `flops`)
    target: dict[str, float]  # N, D, C and the prior's loss there
    interval_width: float
    isoflop_interval_width: float  # of the standard IsoFLOP design of the same compute
    isoflop_runs: tuple[tuple[float, float], ...]  # its (N, D), of the same FLOPs (attention included)
    law: str
    prior_params: dict[str, float]
    prior_source: str
    noise: float
    n_runs_so_far: int  # runs already trained
    accelerator: str
    mfu: float
    runs_so_far: tuple[tuple[float, float], ...] = ()  # their (N, D); in memory only, not in JSON
    hparams: str | None = None  # the `scaling hparams --json` file whose laws set LR and batch (None: auto)

    @property
    def gain(self) -> float:
        """How many times narrower the plan's interval is than the IsoFLOP design's."""
        return self.isoflop_interval_width / self.interval_width

    @property
    def gpu_hours(self) -> float:
        return sum(r.gpu_hours for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "runs": [r.to_json() for r in self.runs],
            "spent": self.spent,
            "budget": self.budget,
            "gpu_hours": self.gpu_hours,
            "gpu": self.accelerator,
            "mfu": self.mfu,
            "target": dict(self.target),
            "interval_width": self.interval_width,
            "isoflop_interval_width": self.isoflop_interval_width,
            "gain": self.gain,
            "isoflop_runs": [
                {"N": n, "D": d, "C": training_flops(n, d)} for n, d in self.isoflop_runs
            ],
            "law": self.law,
            "prior": {"params": dict(self.prior_params), "source": self.prior_source},
            "noise": self.noise,
            "runs_so_far": self.n_runs_so_far,
            "hparams": self.hparams,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SweepPlan:
        """Inverse of `to_json` (without the (N, D) of the runs so far); UsageError when `obj` is no plan."""
        obj = check_format(obj, FORMAT, "a sweep plan (`scaling plan --json`)")
        return cls(
            runs=tuple(ProposedRun.from_json(r) for r in obj["runs"]),
            budget=float(obj["budget"]),
            spent=float(obj["spent"]),
            target={k: float(v) for k, v in obj["target"].items()},
            interval_width=float(obj["interval_width"]),
            isoflop_interval_width=float(obj["isoflop_interval_width"]),
            isoflop_runs=tuple((float(r["N"]), float(r["D"])) for r in obj["isoflop_runs"]),
            law=str(obj["law"]),
            prior_params={k: float(v) for k, v in obj["prior"]["params"].items()},
            prior_source=str(obj["prior"]["source"]),
            noise=float(obj["noise"]),
            n_runs_so_far=int(obj["runs_so_far"]),
            accelerator=str(obj["gpu"]),
            mfu=float(obj["mfu"]),
            hparams=obj.get("hparams"),
        )

    def __repr__(self) -> str:
        return (
            f"SweepPlan(runs={len(self.runs)}, spent={self.spent:.3g}, budget={self.budget:.3g}, "
            f"law={self.law!r}, interval_width={self.interval_width:.3g}, gain={self.gain:.3g})"
        )

    def describe(self) -> str:
        t = self.target
        lines = [
            f"plan: {count(len(self.runs), 'run')}, {self.spent:.3g} of {self.budget:.3g} FLOPs with "
            f"attention (6 N D: {sum(r.C for r in self.runs):.3g}; {self.gpu_hours:.3g} {self.accelerator} "
            f"GPU-hours at MFU {self.mfu:g})",
            f"target: N = {format_quantity(t['N'])} params, D = {format_quantity(t['D'])} tokens, "
            f"prior loss {t['loss']:.4g} nats/token",
            f"expected 95 % interval width of the target loss: {self.interval_width:.3g} nats/token "
            f"(IsoFLOP design of equal compute: {self.isoflop_interval_width:.3g}; gain {self.gain:.2f}x)",
            f"prior: {self.law}, {self.prior_source}"
            + (f"; {count(self.n_runs_so_far, 'run')} already trained" if self.n_runs_so_far else ""),
            f"  {'run':<22s} {'N':>8s} {'D':>8s} {'C':>9s} {'shape (L x d, heads)':>21s} {'steps':>7s} "
            f"{'GPU-h':>8s}",
        ]
        for r in self.runs:
            shape = f"{r.n_layer} x {r.d_model}, {r.n_head}"
            lines.append(
                f"  {r.name:<22s} {format_quantity(r.N):>8s} {format_quantity(r.D):>8s} {r.C:9.3g} "
                f"{shape:>21s} {r.steps:>7,} {r.gpu_hours:8.3g}"
            )
        return "\n".join(lines)

    def sweep_yaml(self, name: str) -> str:
        """The sweep file `scaling-train --config-dir DIR -m +sweep=NAME` runs from DIR/sweep/NAME.yaml.

        Hydra's sweeper crosses its parameters, so the runs are one parameter, `sweep.run`, whose value
        names an entry of `sweep.runs`; the model and training keys read that entry by interpolation."""
        entries = {
            r.name: {
                "n_layer": r.n_layer,
                "d_model": r.d_model,
                "n_head": r.n_head,
                "n_ctx": r.n_ctx,
                "tokens": r.D,
                "batch_size": r.batch_size,
                "seed": r.seed,
            }
            for r in self.runs
        }
        assert len(entries) == len(self.runs), "run names must be unique"  # candidates are 10 % apart
        pick = "${sweep.runs.${sweep.run}.%s}"
        config = {
            "sweep": {"name": name, "run": self.runs[0].name, "runs": entries},
            "model": {k: pick % k for k in ("n_layer", "d_model", "n_head", "n_ctx")},
            "train": {"tokens": pick % "tokens", "batch_size": pick % "batch_size", "seed": pick % "seed"},
            "hydra": {"sweeper": {"params": {"sweep.run": ",".join(entries)}}},
        }
        if self.hparams:  # the trainer takes the LR from the laws; the batch above is the laws' already
            config["train"].update({"lr": "law", "hparams": self.hparams})
        t = self.target
        head = [
            "# @package _global_",
            f"# Planned by `scaling plan`: {count(len(self.runs), 'run')}, {self.spent:.3g} of "
            f"{self.budget:.3g} FLOPs with attention, to predict the loss at N = {format_quantity(t['N'])} "
            f"params, D = {format_quantity(t['D'])} tokens",
            f"# (expected 95 % interval {self.interval_width:.3g} nats/token; an IsoFLOP design of the same "
            f"compute: {self.isoflop_interval_width:.3g}).",
            f"#   scaling-train --config-dir DIR -m +sweep={name}      (DIR: the folder that holds sweep/)",
        ]
        return "\n".join(head) + "\n" + yaml.safe_dump(config, sort_keys=False, width=120)


def _run_name(N: float, D: float, seed: int) -> str:
    # a config key: no dots (OmegaConf paths), readable in the run folder's name
    return f"N{format_quantity(N)}_D{format_quantity(D)}_s{seed}".replace(".", "p")


@checked(
    max_runs=whole_number(MIN_RUNS, f"must be a whole number >= {MIN_RUNS}"),
    max_repeats=whole_number(1, "must be a whole number >= 1"),
    noise=Constraint(lambda v: 0 < v < 1, "is a relative spread in (0, 1), e.g. 0.01 for 1 %", repr),
    n_ctx=whole_number(1, "must be a positive whole number of tokens"),
    seed=NON_NEGATIVE,  # numpy's generators take non-negative seeds only
)
def plan(
    budget: float | str,
    target_params: float | str,
    target_tokens: float | str | None = None,
    *,
    optimal: bool = False,
    prior: FitResult | None = None,
    runs_so_far: pd.DataFrame | str | Path | None = None,
    min_params: float | str = PLAN_DEFAULTS["min_params"],
    max_params: float | str = PLAN_DEFAULTS["max_params"],
    max_runs: int = PLAN_DEFAULTS["max_runs"],
    max_repeats: int = PLAN_DEFAULTS["max_repeats"],
    n_ctx: int = PLAN_DEFAULTS["n_ctx"],
    accelerator: str = hardware.DEFAULT_ACCELERATOR,
    mfu: float = hardware.DEFAULT_MFU,
    noise: float = PLAN_DEFAULTS["noise"],
    seed: int = 0,
    allow_unconverged: bool = False,
    hparams: str | Path | None = None,
) -> SweepPlan:
    """Plan the sweep whose fit best predicts the loss at the target, within `budget` FLOPs.

    Parameters
    ----------
    budget : total training compute of the sweep, FLOPs ('1e21' accepted): 6 N D and attention scores.
    target_params : N_t, non-embedding parameters of the model to predict ('175B', or a preset name).
    target_tokens : D_t tokens it will be trained on; or `optimal=True` for the prior's D_opt(N_t).
    prior : a FitResult (its bootstrap samples express the uncertainty); None: Epoch AI's Chinchilla refit.
    runs_so_far : a run table (or anything `load_runs` reads) of runs already trained: the plan adds to
        their information and does not count their compute.
    min_params, max_params : range of model sizes N for the runs (capped at N_t).
    max_runs : most runs in the plan.
    max_repeats : most runs of one (N, D), which then differ in their seed.
    n_ctx : context length (tokens) of the runs' models.
    accelerator, mfu : for GPU-hours (`scaling.hardware`).
    noise : relative run-to-run noise of a final loss (only the interval widths depend on it).
    seed : seeds the sampling of the prior.
    allow_unconverged : plan from a prior fit that did not converge (with a ScalingWarning); refused
        otherwise.
    hparams : a `scaling hparams --json` file: the runs take its laws' batch and LR (`train.lr=law`).

    Raises UsageError for a budget too small for MIN_RUNS runs or for runs that identify the law, a target
    below the runs or past any sensible run, a prior that cannot answer or is no estimate (with `optimal`:
    one whose runs did not identify its allocation), or bad values.
    """
    budget = parse_quantity(budget, "`budget` (FLOPs)")
    N_t = resolve_params(target_params)[0]
    min_params = parse_quantity(min_params, "`min_params`")
    max_params = min(parse_quantity(max_params, "`max_params`"), N_t)
    chip = hardware.get_accelerator(accelerator)
    hardware.gpu_days(1.0, chip, mfu)  # checks mfu
    if prior is not None:
        check_prior_fit(prior, allow_unconverged=allow_unconverged, optimal=optimal)
    prior = Prior.epoch(seed=seed) if prior is None else Prior.from_fit(prior, seed=seed)
    law = get_law(prior.law)
    if (target_tokens is None) == (not optimal):
        raise UsageError("give exactly one of `target_tokens` or `optimal`")
    D_t = (
        float(law.compute_optimal(prior.params).D_opt_for_params(N_t))
        if optimal
        else parse_quantity(target_tokens, "`target_tokens`")
    )
    check_sensible(N_t, D_t)  # predict's bounds: 1e48 tokens is a degenerate prior or a typo, not a plan
    if N_t < min_params:
        raise UsageError(
            f"the target N = {format_quantity(N_t)} params lies below the runs (`min_params` "
            f"{format_quantity(min_params)}): a plan extrapolates from smaller runs; lower `min_params`"
        )
    if min_params > max_params:
        raise UsageError(f"`min_params` {min_params:.3g} exceeds `max_params` {max_params:.3g}")
    laws = read_hparam_laws(hparams) if hparams else None
    cheapest = smallest_run(min_params, n_ctx, laws)
    if D_t < cheapest.D:
        raise UsageError(
            f"the target D = {format_quantity(D_t)} tokens lies below the runs (the smallest trains "
            f"{format_quantity(cheapest.D)} tokens); a plan extrapolates from smaller runs"
        )
    if budget < MIN_RUNS * cheapest.flops:
        raise UsageError(
            f"budget {budget:.3g} FLOPs is too small for {MIN_RUNS} runs: the cheapest run (N = "
            f"{format_quantity(cheapest.N)}, {cheapest.steps} steps of {cheapest.batch_size} x {n_ctx} "
            f"tokens) costs {cheapest.flops:.3g}; raise `budget` to >= {MIN_RUNS * cheapest.flops:.3g} or "
            "lower `min_params`"
        )
    target_loss = float(law.predict(prior.params, N=N_t, D=D_t)[0])
    if not math.isfinite(target_loss):
        raise UsageError(f"the prior gives no finite loss at the target (N = {N_t:.3g}, D = {D_t:.3g})")

    known = None
    if runs_so_far is not None:
        table = load_runs(runs_so_far)
        known = (table["N"].to_numpy(float), table["D"].to_numpy(float))
    candidates = candidate_runs(budget, min_params, max_params, n_ctx, laws)
    N = np.array([c.N for c in candidates], float)
    D = np.array([c.D for c in candidates], float)
    cost = np.array([c.flops for c in candidates])
    crit = TargetVariance(law, prior.thetas, N, D, (N_t, D_t), noise, known)
    limits = Limits(budget, max_runs, max_repeats)
    counts = identifying(crit, optimal_design(crit, cost, limits), cost, limits, (N, D), known)
    spent = float(counts @ cost)
    iso_N, iso_D = isoflop_design(law, prior.params, spent, min_params, max_params)
    per_token = np.array([flops_per_token(shape_for_params(n, n_ctx=n_ctx)) for n in iso_N])
    iso_D = iso_D * spent / (iso_D @ per_token)  # the same FLOPs as the plan, attention included
    iso = TargetVariance(law, prior.thetas, iso_N, iso_D, (N_t, D_t), noise, known)

    def width(variance: float) -> float:  # 95 % interval of the loss from the variance of its log
        return 2 * Z95 * target_loss * math.sqrt(variance)

    runs = []
    for i in np.flatnonzero(counts):
        c = candidates[i]
        for s in range(counts[i]):
            runs.append(
                ProposedRun(
                    _run_name(c.N, c.D, s),
                    c.N,
                    c.D,
                    c.C,
                    c.flops,
                    c.shape.n_layer,
                    c.shape.d_model,
                    c.shape.n_head,
                    c.shape.n_ctx,
                    c.batch_size,
                    c.steps,
                    s,
                    24.0 * hardware.gpu_days(c.flops, chip, mfu),
                )
            )
    runs.sort(key=lambda r: -r.flops)  # largest first, so that parallel workers finish together
    return SweepPlan(
        runs=tuple(runs),
        budget=budget,
        spent=spent,
        target={"N": N_t, "D": D_t, "C": training_flops(N_t, D_t), "loss": target_loss},
        interval_width=width(crit(counts)),
        isoflop_interval_width=width(iso(np.ones(iso_N.size))),
        isoflop_runs=tuple(zip(iso_N.tolist(), iso_D.tolist(), strict=True)),
        law=law.name,
        prior_params=dict(prior.params),
        prior_source=prior.source,
        noise=noise,
        n_runs_so_far=0 if known is None else len(known[0]),
        accelerator=chip.name,
        mfu=mfu,
        runs_so_far=() if known is None else tuple(zip(*(k.tolist() for k in known), strict=True)),
        hparams=str(Path(hparams).resolve()) if hparams else None,
    )
