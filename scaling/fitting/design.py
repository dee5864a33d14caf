"""What a table of runs can identify, before any fit: its design in the (log N, log D) plane.

A law with an N term and a D term (chinchilla, kaplan_nd, data_constrained, ...) needs N and D to vary
independently; a law in one variable needs that variable to vary. Most published families do not form a
grid: a suite trained on one token budget (one D), a data sweep of one model (one N), a compute-optimal
ladder at one tokens-per-parameter ratio (N and D collinear: one D/N). `Design.of(table)` finds which,
`Design.status(law)` says what follows for a law:

- "identified": the runs determine the law;
- "along_design": the runs lie on one line on which every input of the law varies (e.g. chinchilla on one
  D/N ratio): the law's predictions along that line are meaningful, but not how it splits the loss
  between N and D, so compute-optimal allocation and regimes are "not identified by these runs";
- "not_identified": an input of the law does not vary at all (chinchilla on one D): refused.

The rank of the design is that of the centred (log N, log D) matrix, counting a direction only when its
singular value is more than `RANK_TOLERANCE` of the largest. Why 0.05: the variance of the runs across
the line is then under 1/400 of their variance along it, so an exponent across the line is determined at
least 20 times worse than one along it. On Chinchilla's runs the error of an exponent along the design is
about +-0.03 (Besiroglu et al.'s intervals), so across such a line it would be +-0.6: not determined.
Every published grid the repository holds is far above it (the ratio is 0.29 for the OLMo ladder, 0.41
for Gadre et al.'s, 0.64 for Muennighoff et al.'s, 0.78 for Chinchilla's, 0.81 for Porian et al.'s);
a suite of sizes spanning three decades on 260-280B tokens is 0.01, and one whose D were read off a
figure to 1 % is 0.003. The same tolerance decides which of N, D, C and D/N vary along a line.

Units: N params, D tokens, C FLOPs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.laws import LAW_NAMES, Law, get_law
from scaling.io import check_format
from scaling.reference import training_flops

FORMAT = "scaling.design/1"
RANK_TOLERANCE = 0.05  # a direction of the design counts when its singular value exceeds this x the largest
POINT_SPREAD = 1e-3  # runs whose log N and log D spread less than this (0.1 %) are one point
AXES = ("N", "D", "C")  # the inputs a law may need to vary
IDENTIFIED, ALONG_DESIGN, NOT_IDENTIFIED = "identified", "along_design", "not_identified"
# rank-1 designs by the quantity that stays fixed along them
_FIXED = {"D": "one_D", "N": "one_N", "ratio": "one_ratio", "C": "one_C"}
# Epochs (D / U) beyond which repeated data is no longer almost as good as new (Muennighoff et al. 2023,
# "Scaling Data-Constrained Language Models", fig. 1 and 3: up to about 4 epochs the loss is almost that of
# unique data; beyond, returns fall and larger models overfit): a one-dimensional design past it is a
# family whose loss no law of one variable follows (on their one-D families of 15 and 27 epochs the larger
# models' loss levels off or rises; bench/one_axis.py).
REPEAT_EPOCHS = 4.0
# The law a one-dimensional design leaves when the runs are too few to compare laws by backtest: the
# saturating law of the input that varies (docs/fitting.md "Which law for which data"; L(C) = E + A / C^alpha
# is the form the GPT-4 report and Cerebras-GPT fitted to their families). None: no one law (a grid, one C).
DEFAULT_LAWS = {"one_D": "saturating_n", "one_N": "saturating_d", "one_ratio": "saturating_c",
                "one_line": "saturating_c"}  # fmt: skip
_MEANING = {
    "grid": "N and D vary independently",
    "one_D": "one D: every run trained on about {D} tokens",
    "one_N": "one N: every run of about {N} params",
    "one_ratio": "one tokens-per-parameter ratio: D/N about {ratio} for every run (N and D collinear)",
    "one_C": "one compute budget: C about {C} FLOPs for every run (one IsoFLOP profile)",
    "one_line": "one line D ~ N^{slope} (N and D collinear)",
    "one_point": "one point: every run of about {N} params on {D} tokens",
}


@dataclass(frozen=True)
class Design:
    """The design of a run table: `distinct` values of N, D and C; `rank` of the (log N, log D) design
    (0, 1 or 2, see the module docstring); `kind` ("grid", "one_D", "one_N", "one_ratio", "one_C",
    "one_line", "one_point"); `varying`, the inputs that vary (all of N, D, C for a grid); `spread_ratio`,
    the second singular value over the first; `slope` d log D / d log N along a rank-1 design; `center`,
    the geometric means of N params, D tokens, C FLOPs; `has_u`: every run gives U."""

    n_runs: int
    distinct: dict[str, int]
    rank: int
    kind: str
    varying: tuple[str, ...]
    spread_ratio: float
    slope: float | None
    center: dict[str, float]
    has_u: bool = False
    spread: float = 0.0  # standard deviation of the runs along the design's main direction (log units)
    max_epochs: float | None = None  # the most epochs (D / U) of any run; None without U

    @classmethod
    def of(cls, table: pd.DataFrame) -> Design:
        """The design of a run table with columns N params, D tokens (C FLOPs, 6 N D when missing; U)."""
        columns = {k: table[k].to_numpy(float) for k in ("N", "D")}
        given = table["C"].to_numpy(float) if "C" in table else None
        columns["C"] = training_flops(columns["N"], columns["D"]) if given is None else given
        logs = {k: np.log(columns[k]) for k in AXES}
        logs["ratio"] = logs["D"] - logs["N"]
        design = np.column_stack([logs["N"], logs["D"]])
        centred = design - design.mean(axis=0)
        n = len(table)
        _, values, vectors = np.linalg.svd(centred, full_matrices=False)
        scale = values[0] / np.sqrt(n) if n else 0.0  # the spread of log N, log D along the design
        if scale < POINT_SPREAD:
            rank, ratio = 0, float("nan")
        else:
            ratio = float(values[1] / values[0]) if values.size > 1 else 0.0
            rank = 2 if ratio > RANK_TOLERANCE else 1
        sd = {k: float(np.std(v)) for k, v in logs.items()}
        fixed = [k for k in ("D", "N", "ratio", "C") if sd[k] <= RANK_TOLERANCE * scale]
        slope = None
        if rank == 2:
            kind, varying = "grid", AXES
        elif rank == 1:
            kind = _FIXED[min(fixed, key=sd.get)] if fixed else "one_line"
            varying = tuple(k for k in AXES if k not in fixed)
            v_n, v_d = vectors[0]
            slope = float(v_d / v_n) if abs(v_n) > 1e-12 else float("inf")
        else:
            kind, varying = "one_point", ()
        return cls(
            n_runs=n,
            distinct={k: int(np.unique(columns[k]).size) for k in AXES},
            rank=rank,
            kind=kind,
            varying=varying,
            spread_ratio=ratio,
            slope=slope,
            center={k: float(np.exp(logs[k].mean())) for k in AXES},
            has_u="U" in table and bool(table["U"].notna().all()),
            spread=float(scale),
            max_epochs=float(np.nanmax(columns["D"] / table["U"].to_numpy(float)))
            if "U" in table and table["U"].notna().any() else None,
        )

    # ---- what it identifies --------------------------------------------------------------------------
    def status(self, law: Law | str) -> str:
        """IDENTIFIED, ALONG_DESIGN or NOT_IDENTIFIED for `law` (see the module docstring)."""
        law = get_law(law) if isinstance(law, str) else law
        if self.rank == 0 or any(k not in self.varying for k in law.varies):
            return NOT_IDENTIFIED
        if self.rank == 1 and len(law.varies) > 1:
            return ALONG_DESIGN
        return IDENTIFIED

    def laws(self) -> tuple[str, ...]:
        """The laws these runs identify (data_constrained only when every run gives U)."""
        return tuple(
            name
            for name in LAW_NAMES
            if self.status(name) == IDENTIFIED and (self.has_u or "U" not in get_law(name).inputs)
        )

    @property
    def repeats(self) -> str | None:
        """Why a law of one variable does not follow these runs, when they are a one-dimensional design
        that repeats its data more than REPEAT_EPOCHS times; else None."""
        if self.rank != 1 or self.max_epochs is None or self.max_epochs <= REPEAT_EPOCHS:
            return None
        return (
            f"these runs repeat their data up to {self.max_epochs:.3g} epochs (D / U), beyond the "
            f"{REPEAT_EPOCHS:g} within which repeated tokens are worth almost as much as new ones "
            "(Muennighoff et al. 2023): a larger model overfits them, so its loss levels off or rises, which "
            "no law of one variable follows; fit data_constrained on runs that vary N, D and U"
        )

    @property
    def default_law(self) -> str | None:
        """The one law this design leaves (`DEFAULT_LAWS`) when it identifies it, else None."""
        law = DEFAULT_LAWS.get(self.kind)
        return law if law is not None and self.status(law) == IDENTIFIED else None

    @property
    def identifies_allocation(self) -> bool:
        """Whether the runs determine how a law splits the loss between N and D (compute-optimal
        allocation, regimes): only a design in which N and D vary independently does."""
        return self.rank == 2

    def off_design(self, N: float, D: float) -> str | None:
        """Why a law fitted to these runs cannot predict at N params, D tokens, or None when it can: on
        a rank-1 design the target must lie on the runs' line, within the cone `RANK_TOLERANCE` of the
        distance along it (the width within which the runs themselves count as one line)."""
        if self.rank != 1:
            return None
        cn, cd = np.log(self.center["N"]), np.log(self.center["D"])
        angle = np.arctan(self.slope) if np.isfinite(self.slope) else np.pi / 2
        along_n, along_d = np.cos(angle), np.sin(angle)
        x, y = np.log(N) - cn, np.log(D) - cd
        along, across = x * along_n + y * along_d, abs(y * along_n - x * along_d)
        if across <= RANK_TOLERANCE * (self.spread + abs(along)):
            return None
        if abs(along_n) > 1e-9:
            on_line = f"D = {np.exp(cd + self.slope * x):.3g} tokens for this N"
        else:
            on_line = f"N = {self.center['N']:.3g} params"
        return (
            f"N = {N:.3g} params, D = {D:.3g} tokens lies off the runs' design ({self.words}): a law fitted "
            f"to them does not determine the loss there; predict along it ({on_line})"
        )

    @property
    def words(self) -> str:
        """What the design is, in words, e.g. 'one D: every run trained on about 3e+11 tokens'."""
        c = self.center
        text = _MEANING[self.kind].format(
            N=f"{c['N']:.3g}", D=f"{c['D']:.3g}", C=f"{c['C']:.3g}", ratio=f"{c['D'] / c['N']:.3g}",
            slope=f"{self.slope:.2f}" if self.slope is not None else "",
        )
        return f"{self.n_runs} runs, {text}"

    @property
    def not_identified(self) -> str:
        """The sentence a command prints instead of an allocation these runs cannot give."""
        return (
            f"not identified by these runs ({self.words}): a law fitted to them does not determine how the "
            "loss splits between N and D; add runs that vary N and D independently"
        )

    def check_points(self) -> None:
        """UsageError when the runs are one point (one run, or one N and one D): no law can be fitted."""
        if self.rank == 0:
            raise UsageError(
                f"these {self.n_runs} run(s) are one point (N = {self.center['N']:.3g} params, "
                f"D = {self.center['D']:.3g} tokens): no law can be fitted; vary N, D or both"
            )

    def check(self, law: Law) -> None:
        """UsageError when these runs cannot identify `law` (naming the design and the laws they identify);
        a ScalingWarning when they identify its predictions along the design only."""
        self.check_points()
        state = self.status(law)
        fitting = ", ".join(self.laws()) or "none"
        if state == NOT_IDENTIFIED:
            fixed = [k for k in law.varies if k not in self.varying]
            single = [k for k in fixed if self.distinct[k] == 1]
            # a law that needs more than two values of its input says how many (the saturating laws: 3)
            need = (
                f"{law.name} needs at least {getattr(law, 'min_distinct', 2)} distinct values of "
                f"{', '.join(single)}"
                if single
                else f"{law.name} needs {' and '.join(law.varies)} to vary independently"
            )
            raise UsageError(
                f"law {law.name} is not identified by these runs ({self.words}): {need}. "
                f"Laws these runs identify: {fitting}"
            )
        if state == ALONG_DESIGN:
            warnings.warn(
                f"law {law.name}: {self.words}; its predictions along that line are meaningful, how it "
                f"splits the loss between {' and '.join(law.varies)} is not (no allocation or regimes). "
                f"Laws these runs identify: {fitting}",
                ScalingWarning,
                stacklevel=4,
            )

    # ---- the result contract -------------------------------------------------------------------------
    def describe(self) -> str:
        lines = [
            f"design: {self.words}",
            f"  distinct values: {', '.join(f'{self.distinct[k]} of {k}' for k in AXES)}; rank {self.rank} "
            f"of (log N, log D)"
            + ("" if np.isnan(self.spread_ratio) else f" (spread across / along {self.spread_ratio:.3g}, "
               f"counted above {RANK_TOLERANCE:g})"),
        ]
        groups: dict[str, list[str]] = {}
        for name in LAW_NAMES:
            if self.has_u or "U" not in get_law(name).inputs:  # a law these runs lack a column for: left out
                groups.setdefault(self.status(name), []).append(name)
        words = {IDENTIFIED: "identified", ALONG_DESIGN: "along the design only",
                 NOT_IDENTIFIED: "not identified"}
        lines += [f"  {words[k]}: {', '.join(groups[k])}" for k in words if k in groups]
        if not self.identifies_allocation:
            lines.append("  compute-optimal allocation: not identified by these runs")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Design(kind={self.kind!r}, rank={self.rank}, n_runs={self.n_runs}, varying={self.varying})"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_runs": self.n_runs,
            "distinct": dict(self.distinct),
            "rank": self.rank,
            "kind": self.kind,
            "varying": list(self.varying),
            "spread_ratio": None if np.isnan(self.spread_ratio) else self.spread_ratio,
            "slope": self.slope,
            "center": dict(self.center),
            "has_u": self.has_u,
            "spread": self.spread,
            "max_epochs": self.max_epochs,
            "identifies_allocation": self.identifies_allocation,
            "laws": list(self.laws()),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Design:
        obj = check_format(obj, FORMAT, "a design (the \"design\" of `scaling fit --json`)")
        try:
            return cls(
                n_runs=int(obj["n_runs"]),
                distinct={str(k): int(v) for k, v in obj["distinct"].items()},
                rank=int(obj["rank"]),
                kind=str(obj["kind"]),
                varying=tuple(str(k) for k in obj["varying"]),
                spread_ratio=float("nan") if obj.get("spread_ratio") is None else float(obj["spread_ratio"]),
                slope=None if obj.get("slope") is None else float(obj["slope"]),
                center={str(k): float(v) for k, v in obj["center"].items()},
                has_u=bool(obj.get("has_u", False)),
                spread=float(obj.get("spread", 0.0)),
                max_epochs=None if obj.get("max_epochs") is None else float(obj["max_epochs"]),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UsageError(f"malformed design: {exc}") from None
