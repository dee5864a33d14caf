"""The scaling-law forms: Kaplan et al. 2020, Hoffmann et al. 2022 (Chinchilla), Muennighoff et al. 2023, and
one-variable laws with an irreducible loss (the GPT-4 report's L(C) = a C^b + c; Cerebras-GPT).

A `Law` is a small object: its name, parameter names, the formula, `predict` (loss in nats/token from N
parameters, D tokens, C FLOPs, U unique tokens) and what the fitter needs (an internal parameter vector
`theta` with bounds, log-prediction with its Jacobian, starting points from a cheap profile search).

Internally every law predicts log(loss), and theta holds logs of the scale parameters, so that
`E = exp(e)`, `A = exp(a)`... are positive by construction (Chinchilla's log-sum-exp parameterisation).
All internal functions take theta of shape (p,) or (K, p) (K problems at once, for the bootstrap) and
return arrays with the same leading dimension.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from scaling.errors import UsageError
from scaling.fitting.optimal import ComputeOptimal
from scaling.reference import params_for_compute, tokens_for_compute, training_flops

# Numbers per array when many parameter sets are evaluated on all runs at once (a start search, a batch of
# bootstrap refits): 2^21 floats = 16 MiB, so memory stays linear in the runs (a 100,000-row table once
# took 8.6 GB for its 900 starts); large enough that numpy, not Python, sets the speed.
CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class Inputs:
    """Columns a law reads, as float arrays of equal length, with their logs (N params, D tokens, C FLOPs,
    U unique tokens; any missing one of N, D, C is filled from C = 6 N D)."""

    N: np.ndarray | None
    D: np.ndarray | None
    C: np.ndarray | None
    U: np.ndarray | None
    _logs: dict = field(default_factory=dict, repr=False, compare=False)  # fits take logs thousands of times

    @classmethod
    def make(cls, N=None, D=None, C=None, U=None) -> Inputs:
        given = [np.atleast_1d(np.asarray(x, dtype=float)) for x in (N, D, C, U) if x is not None]
        shaped = iter(np.broadcast_arrays(*given))  # a scalar N with an array of D, and so on
        N, D, C, U = (None if x is None else next(shaped) for x in (N, D, C, U))
        if C is None and N is not None and D is not None:
            C = training_flops(N, D)
        elif D is None and N is not None and C is not None:
            D = tokens_for_compute(C, N)
        elif N is None and D is not None and C is not None:
            N = params_for_compute(C, D)
        return cls(N, D, C, U)

    def log(self, name: str) -> np.ndarray:
        if name not in self._logs:
            self._logs[name] = np.log(self.require(name))
        return self._logs[name]

    def require(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        if value is None:
            raise UsageError(f"this law needs {name} ({_COLUMN_MEANING[name]}); give it (or two of N, D, C)")
        return value


_COLUMN_MEANING = {
    "N": "parameters",
    "D": "training tokens",
    "C": "training FLOPs",
    "U": "unique tokens; add a U column or collect run folders whose summary has unique_tokens",
}


def chunks(m: int, n: int) -> Iterator[slice]:
    """Slices of `m` items (parameter sets, runs) such that arrays of (items in a slice, n) hold at most
    CHUNK_ELEMENTS numbers (at least one item per slice)."""
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    return (slice(i, min(i + step, m)) for i in range(0, m, step))


def _col(theta: np.ndarray, i: int) -> np.ndarray:
    """Parameter i of theta (p,) or (K, p), shaped to broadcast against per-point arrays (n,)."""
    return theta[..., i, None]


def _shifted_exps(terms) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    top = functools.reduce(np.maximum, terms)
    exps = [np.exp(t - top) for t in terms]
    return top, exps, sum(exps)


def _logsumexp(*terms: np.ndarray) -> np.ndarray:
    """log(sum exp(terms)), computed stably (what a start search evaluates millions of times)."""
    top, _, total = _shifted_exps(terms)
    return top + np.log(total)


def _logsumexp_weights(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum exp(terms)) and the softmax weights d/d term, computed stably."""
    top, exps, total = _shifted_exps(terms)
    return top + np.log(total), [x / total for x in exps]


def weighted_sum(c: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """sum_i c_i jac_i: (..., n) and (..., n, p) -> (..., p), as a matrix product (einsum is 10x slower)."""
    return np.matmul(c[..., None, :], jac)[..., 0, :]


def weighted_gram(c: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """sum_i c_i jac_i jac_i^T: (..., n) and (..., n, p) -> (..., p, p)."""
    return np.matmul(np.swapaxes(jac * c[..., None], -1, -2), jac)


class Law:
    """A loss law L(N, D, C, U) in nats/token. Subclasses define the form; see module docstring."""

    name: str = ""
    param_names: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    formula: str = ""
    # theta[i] is log(param) for names in `log_params`, the parameter itself otherwise
    log_params: frozenset[str] = frozenset()
    bounds: Mapping[str, tuple[float, float]] = {}  # on theta, for each parameter name
    units: Mapping[str, str] = {}  # what each parameter is measured in, for printing
    # how `scaling.fitting.procedure.fit` may fit it, the default first: "joint" fits every parameter at once
    procedures: tuple[str, ...] = ("joint",)

    @property
    def varies(self) -> tuple[str, ...]:
        """The inputs that must vary, independently of each other, for runs to identify the law
        (`scaling.fitting.design`): its inputs less U (one dataset for every run is fine). A law whose
        identification needs something else declares `varies` as a class attribute."""
        return tuple(k for k in self.inputs if k != "U")

    # ---- public -----------------------------------------------------------------------------------
    def predict(self, params: Mapping[str, float], N=None, D=None, C=None, U=None) -> np.ndarray:
        """Loss (nats/token) at N parameters, D tokens, C FLOPs (any two of N, D, C), U unique tokens."""
        missing = [k for k in self.param_names if k not in params]
        if missing:
            raise UsageError(f"law {self.name} needs parameters {', '.join(missing)}")
        theta = self.to_theta(params)
        return np.exp(self.log_predict(theta, Inputs.make(N, D, C, U)))

    def compute_optimal(self, params: Mapping[str, float]) -> ComputeOptimal | None:
        """Approach 3, the closed form at `params`: N_opt = G (C/6)^a params, D_opt = (1/G) (C/6)^b tokens,
        for laws in N and D; else None."""
        return None

    def bootstrap_optimal(self, samples: np.ndarray) -> ComputeOptimal | None:
        """`compute_optimal` of every row of `samples` (K, p parameter sets, natural units) as one
        ComputeOptimal of (K,) arrays; None for a law not in N and D."""
        rows = [self.compute_optimal(dict(zip(self.param_names, row, strict=True))) for row in samples]
        if any(o is None for o in rows):
            return None
        return ComputeOptimal(*(np.array([getattr(o, k) for o in rows], dtype=float) for k in "abG"))

    def to_theta(self, params: Mapping[str, float]) -> np.ndarray:
        values = [float(params[k]) for k in self.param_names]
        return np.array(
            [np.log(v) if k in self.log_params else v for k, v in zip(self.param_names, values, strict=True)]
        )

    def from_theta(self, theta: np.ndarray) -> dict[str, float]:
        return {
            k: float(np.exp(t) if k in self.log_params else t)
            for k, t in zip(self.param_names, np.asarray(theta, dtype=float), strict=True)
        }

    def natural(self, theta: np.ndarray) -> np.ndarray:
        """theta (..., p) -> parameters in natural units, same shape."""
        out = np.array(theta, dtype=float, copy=True)
        for i, k in enumerate(self.param_names):
            if k in self.log_params:
                out[..., i] = np.exp(out[..., i])
        return out

    def theta_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.bounds.get(k, (-np.inf, np.inf))[0] for k in self.param_names])
        hi = np.array([self.bounds.get(k, (-np.inf, np.inf))[1] for k in self.param_names])
        return lo, hi

    # ---- for the fitter ---------------------------------------------------------------------------
    def log_predict(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """log(loss) at theta (p,) or (K, p): shape (n,) or (K, n)."""
        raise NotImplementedError

    def jacobian(self, theta: np.ndarray, X: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """(log prediction (..., n), d log prediction / d theta (..., n, p)); central differences here,
        analytic in the laws that have a closed form."""
        theta = np.asarray(theta, dtype=float)
        base = self.log_predict(theta, X)
        steps = 1e-6 * np.maximum(1.0, np.abs(theta))
        columns = []
        for i in range(theta.shape[-1]):
            up, down = theta.copy(), theta.copy()
            up[..., i] += steps[..., i]
            down[..., i] -= steps[..., i]
            diff = self.log_predict(up, X) - self.log_predict(down, X)
            columns.append(diff / (2 * steps[..., i, None]))
        return base, np.stack(columns, axis=-1)

    def weighted_hessian(self, theta: np.ndarray, X: Inputs, c: np.ndarray, jac: np.ndarray | None = None):
        """sum_i c_i d^2 log prediction_i / d theta^2, shape (..., p, p); `jac` is the Jacobian at theta
        when the caller has it. Central differences of the Jacobian here (exact gradients matter for the
        optimum; the Hessian only sets the step)."""
        theta = np.asarray(theta, dtype=float)
        p = theta.shape[-1]
        steps = 1e-5 * np.maximum(1.0, np.abs(theta))
        hess = np.zeros(theta.shape[:-1] + (p, p))
        for i in self._differenced():
            up, down = theta.copy(), theta.copy()
            up[..., i] += steps[..., i]
            down[..., i] -= steps[..., i]
            dj = (self.jacobian(up, X)[1] - self.jacobian(down, X)[1]) / (2 * steps[..., i, None, None])
            hess[..., i, :] = weighted_sum(c, dj)
        return 0.5 * (hess + np.swapaxes(hess, -1, -2))

    def _differenced(self) -> Sequence[int]:
        """The parameters (indices) whose rows of the Hessian `weighted_hessian` differences: all."""
        return range(len(self.param_names))

    def starts(self, X: Inputs, loss: np.ndarray) -> np.ndarray:
        """Candidate starting thetas (m, p) from a cheap search; the fitter refines the best of them."""
        raise NotImplementedError

    def check_data(self, X: Inputs) -> None:
        """Raise UsageError when the data cannot identify this law (e.g. one model size for a law in N)."""
        for name in self.inputs:
            if name == "U":
                continue  # one dataset for every run is fine: the repeats D / U still vary
            values = X.require(name)
            if np.unique(values).size < 2:
                raise UsageError(
                    f"law {self.name} needs at least 2 distinct values of {name} ({_COLUMN_MEANING[name]}); "
                    f"all runs have {name} = {values[0]:.4g}"
                )

    def __repr__(self) -> str:
        return f"Law({self.name!r}: {self.formula})"


# ---- Chinchilla ----------------------------------------------------------------------------------
_EXPONENT_GRID = np.linspace(0.05, 1.5, 30)


def _nnls_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin over x >= 0 of |A x - 1|^2 given only G = A'A (k, k) and A'1 (k,): scipy's NNLS on a k x k
    factor R with R'R = G (the same objective up to a constant), so the cost is independent of the rows."""
    size = np.sqrt(np.maximum(np.diag(gram), 1e-300))  # unit columns: the factor is well conditioned
    values, vectors = np.linalg.eigh(gram / np.outer(size, size))
    keep = values > 1e-13 * values.max()
    factor = np.sqrt(values[keep])[:, None] * vectors[:, keep].T
    target = (vectors[:, keep].T @ (rhs / size)) / np.sqrt(values[keep])
    coef, _ = nnls(factor, target, maxiter=50 * gram.shape[0])
    return coef / size


def _profile_linear(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative coefficients of target ~ design @ x, errors relative to target (so ~ log errors)."""
    scaled = design / target[:, None]
    top = np.maximum(np.abs(scaled).max(0), 1e-300)  # columns near 1e-200 (N^-p, p ~ 30) square to 0
    scaled /= top
    return _nnls_gram(scaled.T @ scaled, scaled.sum(0)) / top


def _safe_log(x: np.ndarray | float, floor: float) -> np.ndarray:
    return np.log(np.maximum(x, floor))


def _add_power_term(hess: np.ndarray, cw: np.ndarray, i: int, j: int, x: np.ndarray) -> None:
    """Add to `hess` (..., p, p) the Hessian part sum_n cw_n g g^T of a power term u = theta_i - theta_j x
    inside a log-sum-exp (g = du/dtheta, nonzero at i and j; cw: weights times the term's softmax weight)."""
    s0, s1, s2 = cw.sum(-1), -(cw * x).sum(-1), (cw * x * x).sum(-1)
    hess[..., i, i] += s0
    hess[..., i, j] += s1
    hess[..., j, i] += s1
    hess[..., j, j] += s2


class Chinchilla(Law):
    name = "chinchilla"
    param_names = ("E", "A", "B", "alpha", "beta")
    inputs = ("N", "D")
    formula = "L = E + A / N^alpha + B / D^beta"
    log_params = frozenset({"E", "A", "B"})
    bounds = {
        "E": (-20.0, 5.0),  # log E: E up to ~150 nats, down to ~0 (a pure power law)
        "A": (-30.0, 200.0),
        "B": (-30.0, 200.0),
        "alpha": (1e-4, 5.0),
        "beta": (1e-4, 5.0),
    }
    units = {
        "E": "nats/token (irreducible loss)",
        "A": "nats/token x params^alpha",
        "B": "nats/token x tokens^beta",
        "alpha": "exponent of N",
        "beta": "exponent of D",
    }
    exponent_index = (3, 4)  # theta index of the exponent of the N term, of the D term

    def _terms(self, theta, X):
        e, a, b = (_col(theta, i) for i in range(3))
        alpha, beta = (_col(theta, i) for i in self.exponent_index)
        logN, logD = X.log("N"), X.log("D")
        return e, a - alpha * logN, b - beta * logD, logN, logD  # e broadcasts against the other two

    def log_predict(self, theta, X):
        t0, t1, t2, _, _ = self._terms(np.asarray(theta, dtype=float), X)
        return _logsumexp(t0, t1, t2)

    def jacobian(self, theta, X):
        t0, t1, t2, logN, logD = self._terms(np.asarray(theta, dtype=float), X)
        value, (w0, w1, w2) = _logsumexp_weights(t0, t1, t2)
        jac = np.zeros(value.shape + (len(self.param_names),))
        jac[..., 0], jac[..., 1], jac[..., 2] = w0, w1, w2
        i_alpha, i_beta = self.exponent_index
        jac[..., i_alpha] -= w1 * logN
        jac[..., i_beta] -= w2 * logD  # adds to the same column when the exponents are tied
        return value, jac

    def weighted_hessian(self, theta, X, c, jac=None):
        # log L = LSE(u) with u linear in theta: Hessian = sum_k w_k g_k g_k^T - J J^T, g_k = du_k/dtheta
        if jac is None:
            jac = self.jacobian(theta, X)[1]
        w0, w1, w2 = jac[..., 0], jac[..., 1], jac[..., 2]  # the softmax weights of the three terms
        logN, logD = X.log("N"), X.log("D")
        hess = -weighted_gram(c, jac)
        # u1 depends on (a, alpha) through (1, -logN); u2 on (b, beta) through (1, -logD)
        i_alpha, i_beta = self.exponent_index
        _add_power_term(hess, c * w1, 1, i_alpha, logN)
        _add_power_term(hess, c * w2, 2, i_beta, logD)
        hess[..., 0, 0] += (c * w0).sum(-1)
        return hess

    def compute_optimal(self, params):
        return _chinchilla_optimal(params)

    def starts(self, X, loss):
        N, D = X.require("N"), X.require("D")
        grid = _EXPONENT_GRID
        m = grid.size
        # For every (alpha, beta): the Gram matrix of the design [1, N^-alpha, D^-beta] / loss and its
        # products with 1, accumulated over row chunks (memory linear in the runs, one pass of numpy).
        gram, rhs = np.zeros((m, m, 3, 3)), np.zeros((m, m, 3))
        for rows in chunks(N.size, 2 * m):
            s = 1.0 / loss[rows]
            P, Q = N[rows] ** -grid[:, None] * s, D[rows] ** -grid[:, None] * s
            Ps, Qs = P @ s, Q @ s
            gram[:, :, 0, 0] += s @ s
            gram[:, :, 0, 1] += Ps[:, None]
            gram[:, :, 0, 2] += Qs[None, :]
            gram[:, :, 1, 1] += np.einsum("in,in->i", P, P)[:, None]
            gram[:, :, 1, 2] += P @ Q.T
            gram[:, :, 2, 2] += np.einsum("jn,jn->j", Q, Q)[None, :]
            rhs += np.stack(np.broadcast_arrays(s.sum(), P.sum(1)[:, None], Q.sum(1)[None, :]), axis=-1)
        gram += np.triu(gram, 1).swapaxes(-1, -2)
        rows = []
        for i, alpha in enumerate(grid):
            for j, beta in enumerate(grid):
                E, A, B = _nnls_gram(gram[i, j], rhs[i, j])
                rows.append([*_safe_log([E, A, B], 1e-3 * loss.min()), alpha, beta])
        return np.array(rows)


class ChinchillaTied(Chinchilla):
    """L = E + A / N^alpha + B / D^alpha: Chinchilla's form with one exponent for N and D.

    Why: with alpha = beta the compute-optimal split is N_opt ~ C^0.5, D_opt ~ C^0.5 by construction, and
    one parameter fewer is one degree of freedom less to trade between the N and D terms when the runs
    span a narrow band of tokens per parameter. Muennighoff et al. 2023 ("Scaling Data-Constrained
    Language Models", NeurIPS) fit their base law this way (alpha = beta = 0.353); Gadre et al. 2024
    ("Language models scale reliably with over-training and on downstream tasks") assume alpha = beta to
    extrapolate loss across over-trained models (D/N up to 640) and predict 1.4B and 6.9B models from
    runs 300x cheaper."""

    name = "chinchilla_tied"
    param_names = ("E", "A", "B", "alpha")
    formula = "L = E + A / N^alpha + B / D^alpha"
    bounds = {k: v for k, v in Chinchilla.bounds.items() if k != "beta"}
    units = {**{k: v for k, v in Chinchilla.units.items() if k != "beta"}, "alpha": "exponent of N and of D"}
    exponent_index = (3, 3)

    def compute_optimal(self, params):
        return _chinchilla_optimal({**params, "beta": params["alpha"]})

    def starts(self, X, loss):
        N, D = X.require("N"), X.require("D")
        rows = []
        for alpha in np.linspace(0.02, 1.5, 75):
            design = np.stack([np.ones_like(N), N**-alpha, D**-alpha], axis=1)
            E, A, B = _profile_linear(design, loss)
            rows.append([*_safe_log([E, A, B], 1e-3 * loss.min()), alpha])
        return np.array(rows)


def _exp(log_value: float) -> float:
    """exp(log_value), inf beyond the largest float instead of an OverflowError."""
    return float(np.exp(log_value)) if log_value < 709.0 else float("inf")


def _chinchilla_optimal(params: Mapping[str, float]) -> ComputeOptimal:
    """Approach 3: minimise E + A/N^alpha + B/D^beta subject to C = 6 N D (Hoffmann et al. eq. 4)."""
    A, B, alpha, beta = (float(params[k]) for k in ("A", "B", "alpha", "beta"))
    a = beta / (alpha + beta)
    # in logs: the power overflows a float for exponents near the lower edge of their allowed range
    log_g = (np.log(alpha * A) - np.log(beta * B)) / (alpha + beta)
    return ComputeOptimal(a=a, b=alpha / (alpha + beta), G=_exp(log_g))


# ---- Kaplan --------------------------------------------------------------------------------------
class KaplanSingle(Law):
    """L = (X_c / X)^alpha_X for one variable X in N, D or C."""

    bounds_exponent = (1e-4, 5.0)

    def __init__(self, name: str, variable: str, scale: str, exponent: str):
        self.name = name
        self.variable = variable
        self.param_names = (scale, exponent)
        self.inputs = (variable,)
        self.formula = f"L = ({scale} / {variable})^{exponent}"
        self.log_params = frozenset({scale})
        self.bounds = {scale: (-100.0, 400.0), exponent: self.bounds_exponent}
        unit = {"N": "params", "D": "tokens", "C": "FLOPs"}[variable]
        self.units = {scale: unit, exponent: f"exponent of {variable}"}

    def log_predict(self, theta, X):
        theta = np.asarray(theta, dtype=float)
        return _col(theta, 1) * (_col(theta, 0) - X.log(self.variable))

    def jacobian(self, theta, X):
        theta = np.asarray(theta, dtype=float)
        logx = X.log(self.variable)
        value = _col(theta, 1) * (_col(theta, 0) - logx)
        jac = np.stack([np.broadcast_to(_col(theta, 1), value.shape), _col(theta, 0) - logx], axis=-1)
        return value, jac

    def weighted_hessian(self, theta, X, c, jac=None):
        hess = np.zeros(np.shape(theta)[:-1] + (2, 2))
        hess[..., 0, 1] = hess[..., 1, 0] = c.sum(-1)
        return hess

    def starts(self, X, loss):
        logx, logl = X.log(self.variable), np.log(loss)
        slope, intercept = np.polyfit(logx, logl, 1)
        alpha = max(-slope, 1e-3)
        # also try shallower/steeper slopes through the data's centre, in case of outliers
        centre_x, centre_l = logx.mean(), logl.mean()
        return np.array([[centre_x + centre_l / a, a] for a in (alpha, alpha / 2, alpha * 2)])


# ---- one variable with an irreducible loss -------------------------------------------------------
# The smallest E of a saturating law, as log E: 1e-3 nats/token, 0.05 % of any language model's loss (> 2
# nats), so no prediction tells it from E = 0. Why a floor: a family (or a bootstrap resample of 3 sizes)
# whose best fit is a pure power law sends E toward 0, where the objective is flat; down to Chinchilla's
# bound (E ~ 2e-9) Newton creeps without certifying, so 8-16 % of the bootstrap refits of OLMo and Gadre
# et al.'s four-size families "failed" and their intervals were withheld. At the floor E is held fixed and
# the fit converges, with the warning that the runs do not determine E.
E_FLOOR = float(np.log(1e-3))


class Saturating(Law):
    """L = E + A / X^alpha for one variable X in N, D or C: a power law that levels off at E.

    Why: a family that varies one input only (every size on one token budget; one model on several
    budgets; a compute-optimal or fixed-ratio family along its compute) cannot identify Chinchilla's two
    terms, and a pure power law (kaplan_n, kaplan_d, kaplan_c) has no floor, so it bends the wrong way when
    extrapolated. The form is Chinchilla's with one term: the GPT-4 technical report (OpenAI 2023, fig. 1)
    predicted its final loss with L(C) = a C^b + c, Cerebras-GPT (Dey et al. 2023) published
    L(C) = (C / C0)^-alpha + E for its 20-tokens-per-parameter family. The fit uses every run given (not the
    compute-efficient frontier, as kaplan_c does): give it the one family it describes. Its parameters
    hold for that family only: E is the loss the family levels off at (for X = N: at its one D), not the
    irreducible loss of the data, and there is no compute-optimal allocation."""

    alpha_grid = np.linspace(0.02, 1.5, 75)  # exponents of the start search (profile over E and A)
    min_distinct = 3  # three parameters along one axis: two values of X leave a continuum of fits

    def __init__(self, name: str, variable: str):
        self.name = name
        self.variable = variable
        self.param_names = ("E", "A", "alpha")
        self.inputs = (variable,)
        self.formula = f"L = E + A / {variable}^alpha"
        self.log_params = frozenset({"E", "A"})
        # log A up to 400: C ~ 1e26 FLOPs at an exponent of 3 needs log A ~ 180
        self.bounds = {"E": (E_FLOOR, Chinchilla.bounds["E"][1]), "A": (-30.0, 400.0), "alpha": (1e-4, 5.0)}
        unit = {"N": "params", "D": "tokens", "C": "FLOPs"}[variable]
        self.units = {
            "E": "nats/token (the family's floor)",
            "A": f"nats/token x {unit}^alpha",
            "alpha": f"exponent of {variable}",
        }

    def _terms(self, theta, X):
        logx = X.log(self.variable)
        return _col(theta, 0), _col(theta, 1) - _col(theta, 2) * logx, logx

    def log_predict(self, theta, X):
        t0, t1, _ = self._terms(np.asarray(theta, dtype=float), X)
        return _logsumexp(t0 + 0 * t1, t1)

    def jacobian(self, theta, X):
        t0, t1, logx = self._terms(np.asarray(theta, dtype=float), X)
        value, (w0, w1) = _logsumexp_weights(t0 + 0 * t1, t1)
        return value, np.stack([w0, w1, -w1 * logx], axis=-1)

    def weighted_hessian(self, theta, X, c, jac=None):
        # as Chinchilla's: log L = LSE(u) with u linear in theta
        if jac is None:
            jac = self.jacobian(theta, X)[1]
        hess = -weighted_gram(c, jac)
        _add_power_term(hess, c * jac[..., 1], 1, 2, X.log(self.variable))
        hess[..., 0, 0] += (c * jac[..., 0]).sum(-1)
        return hess

    def starts(self, X, loss):
        x = X.require(self.variable)
        rows = []
        for alpha in self.alpha_grid:
            E, A = _profile_linear(np.stack([np.ones_like(x), x**-alpha], axis=1), loss)
            rows.append([*_safe_log([E, A], 1e-3 * loss.min()), alpha])
        return np.array(rows)

    def check_data(self, X):
        values = X.require(self.variable)
        if np.unique(values).size < self.min_distinct:
            raise UsageError(
                f"law {self.name} needs at least {self.min_distinct} distinct values of {self.variable} "
                f"({_COLUMN_MEANING[self.variable]}) to fix E, A and alpha; these runs have "
                f"{np.unique(values).size}"
            )


class KaplanND(Law):
    name = "kaplan_nd"
    param_names = ("N_c", "D_c", "alpha_N", "alpha_D")
    inputs = ("N", "D")
    formula = "L = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D"
    log_params = frozenset({"N_c", "D_c"})
    bounds = {"N_c": (-100.0, 400.0), "D_c": (-100.0, 400.0), "alpha_N": (1e-4, 5.0), "alpha_D": (1e-4, 5.0)}
    units = {"N_c": "params", "D_c": "tokens", "alpha_N": "exponent of N", "alpha_D": "exponent of D"}

    def _inner(self, theta, X):
        n, d, aN, aD = (_col(theta, i) for i in range(4))
        logN, logD = X.log("N"), X.log("D")
        ratio = aN / aD
        t1, t2 = ratio * (n - logN), d - logD
        inner, (w1, w2) = _logsumexp_weights(t1, t2)
        return n, logN, aN, aD, ratio, inner, w1, w2

    def log_predict(self, theta, X):
        *_, aD, _, inner, _, _ = self._inner(np.asarray(theta, dtype=float), X)
        return aD * inner

    def jacobian(self, theta, X):
        n, logN, aN, aD, ratio, inner, w1, w2 = self._inner(np.asarray(theta, dtype=float), X)
        value = aD * inner
        # d t1 / d alpha_N = (n - logN) / aD ; d t1 / d alpha_D = -aN (n - logN) / aD^2
        dn = aD * w1 * ratio
        dd = aD * w2
        daN = w1 * (n - logN)
        daD = inner - w1 * ratio * (n - logN)
        return value, np.stack(np.broadcast_arrays(dn, dd, daN, daD), axis=-1)

    def compute_optimal(self, params):
        # minimise (N_c/N)^p + D_c 6 N / C over N with p = alpha_N / alpha_D
        p = params["alpha_N"] / params["alpha_D"]
        a = 1.0 / (p + 1.0)
        # in logs: N_c^p overflows a float for the large N_c and p at the edges of the allowed range
        log_g = a * (np.log(p) + p * np.log(params["N_c"]) - np.log(params["D_c"]))
        return ComputeOptimal(a=a, b=1.0 - a, G=_exp(log_g))

    def starts(self, X, loss):
        N, D = X.require("N"), X.require("D")
        rows = []
        for aN in _EXPONENT_GRID[::2]:
            for aD in _EXPONENT_GRID[::2]:
                with np.errstate(over="ignore"):  # an overflowing start is skipped just below
                    target = loss ** (1.0 / aD)
                if not np.all(np.isfinite(target)) or target.max() > 1e250:
                    continue
                p = aN / aD
                design = np.stack([N**-p, 1.0 / D], axis=1)
                X1, Y = _profile_linear(design, target)
                rows.append([_safe_log(X1, 1e-300) / p, _safe_log(Y, 1e-300), aN, aD])
        return np.array(rows)


# ---- Muennighoff et al. 2023 ---------------------------------------------------------------------
class DataConstrained(Law):
    """Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (NeurIPS), eq. 5-7.

    Fitted by default in the paper's two stages (huggingface/datablations, utils/parametric_fit.ipynb):
    "two_stage" first fits the base law with alpha = beta (law chinchilla_tied) on runs without much
    repetition, then R_D* and R_N* with that base fixed on all runs. The authors took their base from
    other, single-epoch runs (Chinchilla's C4 IsoFLOP points; `fit(..., base=...)` does the same); from the
    run table alone stage 1 uses the runs of at most `base_max_epochs` epochs (D / U), the cut of the
    notebook's fit of the authors' own runs. "joint" fits all seven at once, which lets R_D* trade against
    B and beta. R_D* and R_N* are weakly determined either way: on the paper's runs, stage 2 has minima
    from R_D* = 15 to 95 within 0.2 % of one objective (analysis/datablations_fit.py); stage 2 searches as
    the paper did, locally from its start grid `repetition_starts`, and warns when a lower minimum lies
    elsewhere."""

    name = "data_constrained"
    procedures = ("two_stage", "joint")
    base_law = "chinchilla_tied"
    base_max_epochs = 2.5  # the notebook's stage-1 cut: `if ep_lower <= t / ut <= ep_upper` with (0, 2.5)
    repetition_params = ("R_D_star", "R_N_star")
    # stage 2's starts for each R*: the notebook's np.linspace(0, 20, 4) less 0, where eq. 5 divides by zero
    repetition_starts = (20 / 3, 40 / 3, 20.0)
    param_names = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
    inputs = ("N", "D", "U")
    formula = (
        "L = E + A / N'^alpha + B / D'^beta;  D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)), "
        "U_D = min(D, U), R_D = D / U_D - 1;  N' likewise from U_N = min(N, N_opt(U_D)) with R_N*"
    )
    log_params = frozenset({"E", "A", "B", "R_D_star", "R_N_star"})
    bounds = {**Chinchilla.bounds, "R_D_star": (-5.0, 12.0), "R_N_star": (-5.0, 12.0)}
    units = {
        **Chinchilla.units,
        "R_D_star": "epochs of repetition at which repeated data's value decays by 1/e",
        "R_N_star": "excess parameters / U_N at which their value decays by 1/e",
    }

    @staticmethod
    def _effective(x, unique, log_r_star):
        """(U + U R* (1 - exp(-R / R*)) with R = x / U - 1, d/d log R*, d/d U): repeats decay in value."""
        r_star = np.exp(log_r_star)
        repeats = x / unique - 1.0
        decay = np.exp(-repeats / r_star)
        value = unique * (1.0 + r_star * (1.0 - decay))
        d_log_r_star = unique * r_star * ((1.0 - decay) - repeats / r_star * decay)
        d_unique = 1.0 + r_star * (1.0 - decay) - decay * x / unique
        return value, d_log_r_star, d_unique

    def _evaluate(self, theta, X, with_jac: bool):
        theta = np.asarray(theta, dtype=float)
        N, D, U = X.require("N"), X.require("D"), X.require("U")
        e, a, b, alpha, beta, lrd, lrn = (_col(theta, i) for i in range(7))
        unique_d = np.minimum(D, U)
        d_eff, dd_lrd, _ = self._effective(D, unique_d, lrd)
        # N_opt(U_D): the compute-optimal model size whose optimal data is U_D (Approach 3 of the same
        # law): log N_opt = (log alpha + a - log beta - b + beta log U_D) / alpha
        numerator = np.log(alpha) + a - np.log(beta) - b + beta * np.log(unique_d)
        log_n_opt = np.clip(numerator / alpha, -700.0, 700.0)
        capped = np.exp(log_n_opt) < N
        unique_n = np.where(capped, np.exp(log_n_opt), N)
        n_eff, dn_lrn, dn_unique = self._effective(N, unique_n, lrn)
        value, (w0, w1, w2) = _logsumexp_weights(
            e + 0 * n_eff, a - alpha * np.log(n_eff), b - beta * np.log(d_eff)
        )
        if not with_jac:
            return value, None, n_eff, d_eff
        # d log N' / d theta through U_N = N_opt when the model is larger than the data can feed
        dn_log_opt = np.where(capped, dn_unique * unique_n / n_eff, 0.0)
        k1 = -alpha * w1  # d log p / d log N'
        k2 = -beta * w2  # d log p / d log D'
        shape = value.shape
        jac = np.stack(
            np.broadcast_arrays(
                w0,
                w1 + k1 * dn_log_opt / alpha,
                w2 - k1 * dn_log_opt / alpha,
                -w1 * np.log(n_eff) + k1 * dn_log_opt * (1.0 - numerator) / alpha**2,
                -w2 * np.log(d_eff) + k1 * dn_log_opt * (np.log(unique_d) - 1.0 / beta) / alpha,
                k2 * dd_lrd / d_eff,
                k1 * dn_lrn / n_eff,
            ),
            axis=-1,
        )
        return value, jac.reshape(shape + (7,)), n_eff, d_eff

    def effective_sizes(self, params: Mapping[str, float], N, D, U) -> tuple[np.ndarray, np.ndarray]:
        """(N' params, D' tokens): what N parameters trained on D tokens drawn from U unique tokens are
        worth in fresh data and useful parameters (Muennighoff et al. 2023, eq. 5 and 6)."""
        _, _, n_eff, d_eff = self._evaluate(self.to_theta(params), Inputs.make(N=N, D=D, U=U), False)
        return n_eff, d_eff

    def log_predict(self, theta, X):
        return self._evaluate(theta, X, False)[0]

    def jacobian(self, theta, X):
        return self._evaluate(theta, X, True)[:2]

    def compute_optimal(self, params):
        return _chinchilla_optimal(params)

    def starts(self, X, loss):
        # Chinchilla starts on the runs that did not repeat data (where D' = D), then a grid over R*
        single = X.require("D") <= X.require("U") * 1.001
        if single.sum() >= 8 and np.unique(X.N[single]).size >= 2 and np.unique(X.D[single]).size >= 2:
            sub = Inputs.make(N=X.N[single], D=X.D[single])
            base_loss = loss[single]
        else:
            sub, base_loss = Inputs.make(N=X.N, D=X.D), loss
        chin = Chinchilla()
        base = chin.starts(sub, base_loss)
        log_loss = np.log(base_loss)
        parts = chunks(len(base), sub.N.size)
        misfit = np.concatenate([np.abs(log_loss - chin.log_predict(base[p], sub)).sum(-1) for p in parts])
        best = base[np.argsort(misfit)[:3]]
        grid = np.log(np.geomspace(1.0, 100.0, 7))
        return np.array([[*row, rd, rn] for row in best for rd in grid for rn in grid])


class Frozen(Law):
    """`law` with only the parameters `free` fitted: the others keep the values theta carries (their
    derivatives are zero, so the fitter never moves them). Stage 2 of a staged fit; each theta of a batch
    may carry its own fixed values (one per bootstrap resample)."""

    def __init__(self, law: Law, free: tuple[str, ...], fixed: Mapping[str, float]):
        self.law = law
        self.name, self.param_names, self.inputs = law.name, law.param_names, law.inputs
        self.formula, self.log_params, self.bounds, self.units = (
            law.formula,
            law.log_params,
            law.bounds,
            law.units,
        )
        self.free = tuple(free)
        self._free_index = [law.param_names.index(k) for k in self.free]
        self._mask = np.array([k in self.free for k in law.param_names], dtype=float)
        self._fixed_theta = law.to_theta({**dict.fromkeys(law.param_names, 1.0), **fixed})

    def log_predict(self, theta, X):
        return self.law.log_predict(theta, X)

    def jacobian(self, theta, X):
        value, jac = self.law.jacobian(theta, X)
        return value, jac * self._mask

    def _differenced(self):
        return self._free_index  # the fixed parameters' rows are zero, like their gradient (few, so cheap)

    def starts(self, X, loss):
        fixed = self._mask == 0
        starts = self.law.starts(X, loss)
        starts[:, fixed] = self._fixed_theta[fixed]
        return np.unique(starts, axis=0)

    def check_data(self, X):
        self.law.check_data(X)


_LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        Chinchilla(),
        ChinchillaTied(),
        KaplanND(),
        KaplanSingle("kaplan_n", "N", "N_c", "alpha_N"),
        KaplanSingle("kaplan_d", "D", "D_c", "alpha_D"),
        KaplanSingle("kaplan_c", "C", "C_c", "alpha_C"),
        Saturating("saturating_n", "N"),
        Saturating("saturating_d", "D"),
        Saturating("saturating_c", "C"),
        DataConstrained(),
    )
}
LAW_NAMES: tuple[str, ...] = tuple(_LAWS)


def get_law(name: str) -> Law:
    """The law called `name` (one of LAW_NAMES); UsageError listing the choices otherwise."""
    try:
        return _LAWS[name]
    except KeyError:
        raise UsageError(f"unknown law {name!r}; choose one of {', '.join(LAW_NAMES)}") from None
