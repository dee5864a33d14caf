"""Cooldown branches: a run that starts from another run's checkpoint and decays from there.

Hägele et al. 2024 ("Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"): a
constant-LR run with a short cooldown matches a cosine run of the same length, so one long constant-LR
run per model size (the parent, `train.schedule=constant train.save_at=[D1,D2,...]`) and one cooldown
branch per token budget (`train.schedule=wsd train.branch_from=PARENT train.tokens=D`) give the final
losses of many budgets for the compute of the longest one plus the cooldowns.

A parent keeps `branches/step_<S>.pt` after each step S named by `train.save_at`; a branch starts from
that checkpoint (model, optimizer and RNG state), so it trains exactly as a wsd run of its own length
whose decay starts at its branch point would (bitwise on CPU). Torch-free: checked before training.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from scaling.errors import UsageError
from scaling.tracking import flatten
from scaling.training.config import RunPlan
from scaling.training.schedule import Schedule

BRANCH_POINTS = "branches"  # the parent's folder of kept checkpoints
SCHEDULE_FILE = "schedule.json"
# What a branch must share with its parent to continue its training: the model, the data stream and the
# optimizer. The schedule, token budget and evaluations may differ.
SHARED_SECTIONS = ("model", "data")  # every key of these
SHARED_TRAIN = ("batch_size", "lr", "seed", "weight_decay", "beta1", "beta2", "grad_clip")


def branch_checkpoint(run_dir: Path, step: int) -> Path:
    """Where a parent run keeps its checkpoint after optimizer step `step` (1-based steps done)."""
    return Path(run_dir) / BRANCH_POINTS / f"step_{step}.pt"


def _read(path: Path, what: str, where: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"{where}: the parent's {what} cannot be read ({exc})") from None


def _shared(config: dict) -> dict[str, Any]:
    """The settings of a resolved config that a branch shares with its parent, by dotted key."""
    train = config.get("train") or {}
    return {
        **flatten({k: config.get(k) for k in SHARED_SECTIONS}),
        **{f"train.{k}": train.get(k) for k in SHARED_TRAIN},
    }


def branch_plan(plan: RunPlan, resolved: dict[str, Any], needs_checkpoint: bool) -> RunPlan:
    """The plan of a cooldown branch once its parent is checked: the parent's warmup in its schedule.

    Refuses (UsageError, before anything is written) a parent that is missing, not completed, of another
    model, data or optimizer setup, whose LR before the branch point is not the branch's (a parent that
    decays before it), or (when the branch has no checkpoint of its own yet: `needs_checkpoint`) that kept
    no checkpoint at the branch point.
    """
    parent = plan.branch_from
    assert parent is not None
    where = f"train.branch_from={parent}"
    if not parent.is_dir():
        raise UsageError(f"{where}: no such run folder; train the parent run first")
    summary = _read(parent / "summary.json", "summary.json", where)
    status = summary.get("status") if isinstance(summary, dict) else None
    if status != "completed":
        shown = f"is {status}" if status else "has no finished run (no summary.json)"
        raise UsageError(f"{where}: the parent run {shown}, not completed; finish it (rerun its command)")
    config = _read(parent / "config.yaml", "config.yaml", where)
    if not isinstance(config, dict):
        raise UsageError(f"{where}: the parent has no readable config.yaml")
    old, new = _shared(config), _shared(resolved)
    changes = [
        f"{key}: {old.get(key, '(unset)')} -> {new.get(key, '(unset)')}"
        for key in sorted(set(old) | set(new))
        if old.get(key, "(unset)") != new.get(key, "(unset)")
    ]
    if changes:
        raise UsageError(
            f"{where}: the parent is of another shape or setup ({'; '.join(changes)}); a branch shares its "
            "parent's model, data, batch size, peak LR, seed and optimizer"
        )
    saved = _read(parent / SCHEDULE_FILE, SCHEDULE_FILE, where)
    if not isinstance(saved, dict):
        raise UsageError(f"{where}: the parent has no {SCHEDULE_FILE} (trained before LR schedules existed)")
    schedule = Schedule.from_json(saved)
    step = plan.branch_step
    if step > schedule.steps or schedule.schedule not in ("constant", "wsd") or schedule.decay_start < step:
        raise UsageError(
            f"{where}: the parent ({schedule.schedule}, {schedule.steps} steps) does not hold its peak LR up "
            f"to the branch point, step {step}; branch from a train.schedule=constant run (or a wsd run "
            "whose decay starts after the branch point)"
        )
    kept = branch_checkpoint(parent, step)
    if needs_checkpoint and not kept.is_file():
        have = sorted(p.name for p in (parent / BRANCH_POINTS).glob("step_*.pt"))
        raise UsageError(
            f"{where}: the parent kept no checkpoint at step {step} ({plan.branch_tokens} tokens; kept: "
            f"{', '.join(have) or 'none'}); add {plan.branch_tokens} to the parent's train.save_at"
        )
    own = replace(plan.schedule, warmup_steps=schedule.warmup_steps)
    return replace(plan, warmup_steps=schedule.warmup_steps, schedule=own, branch_from=parent.resolve())
