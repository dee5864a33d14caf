"""Prediction under a schedule: the loss curve a fitted learning-curve law (`scaling.fitting.curves`)
predicts for a planned run of N parameters and a given LR schedule, and its final loss with a 95 % interval
(the spread of the law's run-bootstrap resamples).

Units: N non-embedding parameters, steps optimizer updates, tokens training tokens, loss nats/token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import UsageError
from scaling.fitting.curves import CurveFit
from scaling.fitting.intervals import percentile_interval
from scaling.io import check_format
from scaling.runs.curves import read_schedule
from scaling.units import parse_quantity

FORMAT = "scaling.curve_prediction/1"


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, repr=False)
class CurvePrediction:
    """The predicted loss at every row of a schedule (`steps`, `tokens`, `curve`; NaN at step 0, where the
    law has no value) and at its last row (`loss`, with `loss_ci`, 95 %, when the fit has a bootstrap)."""

    law: str
    N: float
    steps: np.ndarray
    tokens: np.ndarray
    curve: np.ndarray
    loss_ci: tuple[float, float] | None = None

    @property
    def loss(self) -> float:
        return float(self.curve[-1])

    def __repr__(self) -> str:
        return (f"CurvePrediction(law={self.law!r}, N={self.N:.4g}, {len(self.steps)} rows to step "
                f"{self.steps[-1]:g}, loss={self.loss:.5g})")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "law": self.law, "N": self.N, "step": float(self.steps[-1]),
            "tokens": float(self.tokens[-1]), "loss": _number(self.loss),
            "loss_ci": None if self.loss_ci is None else list(self.loss_ci),
            "curve": [{"step": float(s), "tokens": float(t), "loss": _number(v)}
                      for s, t, v in zip(self.steps, self.tokens, self.curve, strict=True)],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CurvePrediction:
        obj = check_format(obj, FORMAT, "a curve prediction")
        rows = obj["curve"]
        ci = obj.get("loss_ci")
        return cls(
            law=str(obj["law"]), N=float(obj["N"]),
            steps=np.array([r["step"] for r in rows], float),
            tokens=np.array([r["tokens"] for r in rows], float),
            curve=np.array([np.nan if r["loss"] is None else r["loss"] for r in rows], float),
            loss_ci=None if ci is None else (float(ci[0]), float(ci[1])),
        )

    def describe(self) -> str:
        ci = (f", 95 % [{self.loss_ci[0]:.4f}, {self.loss_ci[1]:.4f}]" if self.loss_ci
              else " (no interval: fit with --bootstrap K)")
        lines = [f"law {self.law}, N = {self.N:.4g}: loss {self.loss:.4f} at step {self.steps[-1]:g} "
                 f"({self.tokens[-1]:.4g} tokens){ci}"]
        shown = np.unique(np.linspace(0, len(self.steps) - 1, min(len(self.steps), 8)).round().astype(int))
        lines += [f"  step {self.steps[i]:>10g}  tokens {self.tokens[i]:>10.4g}  loss {self.curve[i]:.4f}"
                  for i in shown]
        return "\n".join(lines)


def predict_schedule(fit: CurveFit, *, N: float | str, schedule: str | Path) -> CurvePrediction:
    """The loss curve of a run of N parameters (175e9, '124M') under the schedule CSV `schedule`
    (`step, tokens, lr` rows, steps strictly increasing), from a learning-curve fit."""
    N = parse_quantity(N, "N")
    lr_schedule, steps, tokens = read_schedule(schedule)
    if steps[-1] <= 0:
        raise UsageError(f"{schedule}: the schedule ends at step 0; the law needs at least one step")
    curve = fit.predict(lr_schedule, steps, N)
    boot = fit.predict_bootstrap(lr_schedule, steps[-1:], N)
    ci = None
    if boot is not None:
        lo, hi = percentile_interval(boot[:, -1])
        ci = (float(lo), float(hi))
    return CurvePrediction(law=fit.law, N=N, steps=steps, tokens=tokens, curve=curve, loss_ci=ci)
