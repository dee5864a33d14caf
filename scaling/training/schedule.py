"""Learning-rate schedules: the LR of every optimizer step, and its compact record in a run folder.

`train.schedule` picks one (`sweeps/config.yaml`); every schedule starts with the same linear warmup
(`warmup_steps` steps from peak / warmup_steps up to the peak) and ends at min_lr_ratio x peak at exactly
the last step, except `constant`, which stays at the peak:

- `cosine` (default): cosine decay from the end of warmup to the last step (GPT-3, Chinchilla).
- `linear`: linear decay from the end of warmup to the last step.
- `constant`: the peak after warmup, to the end (the parent of cooldown branches).
- `wsd`: warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024): the peak until the last
  `decay_frac` of the steps, then `decay_shape` (`linear`, `cosine`, or `sqrt`: 1 - sqrt(progress),
  Hägele et al.'s best) down to the floor.

Steps are 0-based here (`lr_at(0)` is the LR of the first optimizer step), as in the training loop; the
run folder's records count steps done (1-based), see docs/DESIGN.md. `Schedule.knots` writes the LR of
every step in compact form: breakpoints between which linear interpolation is within `KNOT_TOLERANCE`
x peak of every step's LR, with the exact cumulative LR sum at each.

Torch-free, like `scaling.training.config`, which builds one for each run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scaling.errors import UsageError

SCHEDULES = ("cosine", "wsd", "constant", "linear")
DECAY_SHAPES = ("linear", "cosine", "sqrt")
FORMAT = "scaling.schedule/1"
# Linear interpolation between knots stays within this fraction of the peak LR of every step's LR: far
# below what a loss law can resolve (a 1e-5 relative change of the LR area), and ~250 knots for a cosine.
KNOT_TOLERANCE = 1e-5


def _decay(shape: str, progress: float) -> float:
    """The fraction of (peak - floor) left at `progress` in [0, 1] of a decay."""
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - math.sqrt(progress)  # sqrt


@dataclass(frozen=True)
class Schedule:
    """The LR of every optimizer step of one run.

    Parameters
    ----------
    schedule : one of SCHEDULES.
    lr : peak learning rate.
    steps : optimizer steps of the run.
    warmup_steps : steps of linear warmup (>= 1).
    min_lr_ratio : the floor, as a fraction of the peak, reached at the last step (not for `constant`).
    decay_start : 0-based index of the first decaying step of `wsd` (steps for the others: unused).
    decay_shape : the shape of the `wsd` decay, one of DECAY_SHAPES.
    """

    schedule: str
    lr: float
    steps: int
    warmup_steps: int
    min_lr_ratio: float
    decay_start: int
    decay_shape: str = "sqrt"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UsageError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.decay_shape not in DECAY_SHAPES:
            raise UsageError(
                f"train.decay_shape must be one of {', '.join(DECAY_SHAPES)}, got {self.decay_shape!r}"
            )
        if self.schedule == "wsd" and not self.warmup_steps <= self.decay_start < self.steps:
            raise UsageError(
                f"the wsd decay would start at step {self.decay_start + 1} of {self.steps}, inside the "
                f"{self.warmup_steps} warmup steps or after the end; lower train.decay_frac or "
                "train.warmup_frac"
            )

    @property
    def decay_frac(self) -> float:
        """The fraction of the steps that decay (wsd); 1 for cosine and linear, 0 for constant."""
        if self.schedule == "constant":
            return 0.0
        if self.schedule == "wsd":
            return (self.steps - self.decay_start) / self.steps
        return 1.0

    def lr_at(self, step: int) -> float:
        """The LR of 0-based optimizer step `step`."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        floor = self.min_lr_ratio * self.lr
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "wsd":
            if step < self.decay_start:
                return self.lr
            progress = min(1.0, (step - self.decay_start + 1) / (self.steps - self.decay_start))
            return floor + (self.lr - floor) * _decay(self.decay_shape, progress)
        # cosine and linear: the decay's last step is the run's last (cosine's arithmetic is the trainer's
        # original, so that runs and checkpoints from before schedules existed resume bitwise)
        span = max(1, self.steps - 1 - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "linear":
            return floor + (self.lr - floor) * (1.0 - progress)
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * progress))

    def lrs(self) -> np.ndarray:
        """The LR of every step, steps 1..steps (index i holds 0-based step i)."""
        return np.array([self.lr_at(i) for i in range(self.steps)])

    def lr_sums(self) -> np.ndarray:
        """The LR area: index i holds the sum of the LRs of the first i + 1 optimizer steps."""
        return np.cumsum(self.lrs())

    def knots(self, tolerance: float = KNOT_TOLERANCE) -> list[list[float]]:
        """[[step, lr, lr_sum], ...] (steps done, 1-based): the first and last step, every breakpoint of
        the schedule, and enough points between for linear interpolation to stay within
        tolerance x peak of every step's LR."""
        lrs = self.lrs()
        sums = np.cumsum(lrs)  # as lr_sums(), without computing the LRs twice
        limit = tolerance * self.lr

        def fits(i: int, j: int) -> bool:  # the chord from i to j stays within limit of every step between
            if j - i < 2:
                return True
            x = np.arange(i, j + 1)
            chord = lrs[i] + (lrs[j] - lrs[i]) * (x - i) / (j - i)
            return bool(np.max(np.abs(chord - lrs[i : j + 1])) <= limit)

        breaks = sorted({0, self.warmup_steps - 1, self.warmup_steps, self.decay_start - 1, self.decay_start,
                         self.steps - 1} & set(range(self.steps)))  # fmt: skip
        chosen = [0]
        for end in breaks[1:]:
            i = chosen[-1]
            while i < end:
                # the longest chord from i: double the reach, then bisect (the segments are smooth)
                reach = 1
                while i + 2 * reach <= end and fits(i, i + 2 * reach):
                    reach *= 2
                lo, hi = i + reach, min(end, i + 2 * reach)
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if fits(i, mid) else (lo, mid - 1)
                chosen.append(lo)
                i = lo
        return [[i + 1, float(lrs[i]), float(sums[i])] for i in chosen]

    def to_json(self) -> dict[str, Any]:
        """schedule.json of a run folder (docs/DESIGN.md): the parameters, 1-based decay_start, knots."""
        fields = asdict(self)
        fields["decay_start"] = self.decay_start + 1
        return {"format": FORMAT, **fields, "decay_frac": self.decay_frac, "knots": self.knots()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        """The schedule saved by `to_json` (another format is refused)."""
        if data.get("format", FORMAT) != FORMAT:
            raise UsageError(f"schedule format {data.get('format')!r} is not {FORMAT}")
        names = ("schedule", "lr", "steps", "warmup_steps", "min_lr_ratio", "decay_shape")
        return cls(**{k: data[k] for k in names}, decay_start=int(data["decay_start"]) - 1)


def decay_start_for(schedule: str, steps: int, decay_frac: float) -> int:
    """The 0-based first decaying step of a wsd run of `steps` steps that decays over `decay_frac` of
    them (at least one step); `steps` for the other schedules."""
    if schedule != "wsd":
        return steps
    return steps - max(1, round(decay_frac * steps))
