"""Sweeps: one Hydra multirun of many trainings that can be relaunched, preempted and requeued safely.

What a sweep does, on any launcher (`basic`, `local`, `slurm`):

1. Expand every point of the sweep and check each one before anything runs (`plan_sweep`): the shape is
   valid, the token budget buys enough optimizer steps, the corpus is there, SLURM answers when asked
   for. One `error:` line lists every bad point; nothing is launched.
2. Skip runs whose folder already holds a finished run (completed, or diverged unless
   `hydra.sweeper.retry_diverged=true`): a run's folder is fixed by its config (its overrides), so a
   relaunch finds it. A relaunch of a finished sweep trains nothing and says so. A folder whose saved
   config differs from the sweep's (a sweep file edited since) is refused, all such runs in one line,
   unless `hydra.sweeper.retrain_changed=true`, which moves them to `SWEEP/.replaced/` and trains them again.
3. Launch the rest. Inside a run, `interruptible()` turns SIGINT (Ctrl-C), SIGUSR2 (submitit's preemption
   and time-out signal) and SIGTERM into a stop request: the trainer checkpoints at the next step
   boundary and marks the run `interrupted`; under submitit the job then checkpoints itself and requeues,
   and the requeued job resumes from that step. A second launch of a run waits for the first
   (`scaling.training.lock`), so a sweep launched twice trains each run once.
4. End with a summary (`SweepSummary`): completed / diverged / failed / cancelled / interrupted runs with
   their folders, also written to `sweep_summary.json` in the sweep folder, after Ctrl-C too.

The Hydra plugins that wire this in live in `hydra_plugins/scaling_sweeps` (Hydra only loads plugins
from that namespace); this module holds the logic and imports no torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from scaling.errors import UsageError
from scaling.io import atomic_write_json
from scaling.reference import training_flops
from scaling.training.config import (
    RunPlan,
    plan_run,
    register_resolvers,
    resolved_config,
    run_folder_changes,
)
from scaling.training.lock import is_locked

FINISHED = ("completed", "diverged")
OUTCOMES = ("completed", "diverged", "failed", "cancelled", "interrupted", "running", "pending")
SUMMARY_FILE = "sweep_summary.json"

# The launchers import this module in every process that composes `hydra.run.dir` (SLURM workers too).
register_resolvers()


# ---------------------------------------------------------------------------------------------------------
# Run folders


def read_summary(run_dir: Path) -> dict:
    """run_dir/summary.json, or {} when the run never wrote one (or it is unreadable)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def read_status(run_dir: Path) -> str | None:
    """The `status` in run_dir/summary.json, or None when there is none."""
    status = read_summary(run_dir).get("status")
    return None if status is None else str(status)


@dataclass(frozen=True)
class PlannedRun:
    """One point of a sweep: its Hydra overrides, its run folder and what that folder holds already."""

    overrides: tuple[str, ...]
    run_dir: Path
    status: str | None  # summary.json status before launch; None for a new run
    description: str = ""  # what the run trains, e.g. "N=991,616 params, D=167,936 tokens, ..."
    changes: tuple[str, ...] = ()  # how the config saved in its folder differs ("train.lr: 0.001 -> 0.002")
    parent: Path | None = None  # a cooldown branch's parent run folder (train.branch_from)

    def finished(self, retry_diverged: bool) -> bool:
        return self.status == "completed" or (self.status == "diverged" and not retry_diverged)


# ---------------------------------------------------------------------------------------------------------
# Checks before launch


def check_slurm(partition: str | None = None, timeout_s: float = 20.0) -> None:
    """Raise UsageError unless a SLURM controller answers `sinfo` (and knows `partition`, when given)."""
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        raise UsageError(
            f"SLURM_CONF={conf} does not exist; unset it or point it to the cluster's slurm.conf"
        )
    if shutil.which("sinfo") is None:
        raise UsageError(
            "hydra/launcher=slurm needs SLURM, but `sinfo` is not installed here; run on a SLURM login node "
            "(or start the one-node test cluster: bash tests/slurm.sh start) or use hydra/launcher=local"
        )
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"SLURM does not answer: `sinfo` took over {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(
            f"SLURM is not reachable (sinfo: {why}); check the controller and {conf or 'its slurm.conf'}"
        )
    partitions = [p.rstrip("*") for p in proc.stdout.split()]
    if partition is not None and partition not in partitions:
        raise UsageError(
            f"SLURM has no partition {partition!r}; set hydra.launcher.partition to one of "
            f"{', '.join(partitions) or '(none)'}"
        )


def contained_run_dir(cfg: DictConfig) -> Path:
    """A job's run folder, which must lie inside its sweep's folder: no `..` or absolute subdir, and a
    sweep name that is one folder name, so that a config cannot make a run write elsewhere."""
    name = OmegaConf.select(cfg, "sweep.name")
    if name is not None and (not str(name) or Path(str(name)).name != str(name) or str(name) in (".", "..")):
        raise UsageError(f"sweep.name must be a plain folder name (no '/' or '..'), got {name!r}")
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    run_dir = sweep_dir / str(cfg.hydra.sweep.subdir)
    root = sweep_dir.resolve()
    if root == run_dir.resolve() or not run_dir.resolve().is_relative_to(root):
        raise UsageError(
            f"run folder {run_dir} is not inside the sweep folder {sweep_dir}; hydra.sweep.subdir must "
            "name a folder below it (no '..', not absolute)"
        )
    return run_dir


def plan_sweep(
    jobs: Sequence[Sequence[str]], load_config: Callable[[list[str]], DictConfig]
) -> list[PlannedRun]:
    """Compose and check every job of a sweep; raise one UsageError naming every bad point.

    Parameters
    ----------
    jobs : the overrides of each job, as Hydra's sweeper expands them.
    load_config : overrides -> the job's composed config, as Hydra's `load_sweep_config` composes it.
    """
    planned: list[PlannedRun] = []
    problems: list[str] = []
    for overrides in jobs:
        label = " ".join(overrides) or "(defaults)"
        try:
            cfg = load_config(list(overrides))
            job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # as the job gets it
            plan = plan_run(job_cfg)  # the trainer's own checks, so that the sweep and the run never disagree
            run_dir = contained_run_dir(cfg)
            # the trainer's own check of the folder's config, for every run before any is launched
            changes = tuple(run_folder_changes(run_dir, resolved_config(job_cfg, plan)))
        except UsageError as exc:
            problems.append(f"[{label}] {exc}")
            continue
        except Exception as exc:  # composition and interpolation errors name the bad key themselves
            problems.append(f"[{label}] {one_line(exc)}")
            continue
        status, description = read_status(run_dir), describe(plan)
        planned.append(PlannedRun(tuple(overrides), run_dir, status, description, changes, plan.branch_from))
    if problems:
        raise UsageError(
            f"{len(problems)} of {len(jobs)} sweep points cannot run, nothing launched: "
            + "; ".join(problems)
        )
    dirs = [p.run_dir for p in planned]
    if len(set(dirs)) < len(dirs):
        twins = sorted({str(d) for d in dirs if dirs.count(d) > 1})
        raise UsageError(
            f"several sweep points share a run folder ({', '.join(twins)}); an override that changes the "
            "run is excluded from hydra.job.config.override_dirname"
        )
    return planned


def describe(plan: RunPlan) -> str:
    """What a run trains, as the dry run lists it: N, D, C = 6 N D and optimizer steps."""
    n, d = f"{plan.n_params:,}", f"{plan.tokens:,}"
    flops = training_flops(plan.n_params, plan.tokens)
    return f"N={n:>11} params  D={d:>13} tokens  C={flops:9.3g} FLOPs  {plan.steps:>7,} steps"


def waves(todo: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """The runs to launch, in waves: a cooldown branch goes in a wave after its parent's when its parent
    is launched too (a parent that has finished already, or lies outside the sweep, does not wait)."""
    pending, out = list(todo), []
    while pending:
        launching = {p.run_dir.resolve() for p in pending}
        wave = [p for p in pending if p.parent is None or p.parent.resolve() not in launching] or pending
        out.append(wave)
        pending = [p for p in pending if p not in wave]
    return out


def one_line(exc: BaseException) -> str:
    """An error's message on one line; Hydra's lists of options joined by commas, its search path dropped."""
    text = str(exc).split("\nConfig search path:")[0].strip()
    text = text.replace(":\n\t", ": ").replace("\n\t", ", ").replace("\n\n", "; ")
    return " ".join(text.split()) or type(exc).__name__


def format_plan(planned: Sequence[PlannedRun], sweep_dir: Path) -> str:
    """The table `hydra.sweeper.dry_run=true` prints: every run, what it trains, and its folder's state."""
    lines = [f"sweep {sweep_dir}: {len(planned)} runs (dry run: nothing launched)"]
    for p in planned:
        state = "changed" if p.changes else p.status or "new"
        lines.append(f"  {state:11s} {p.description}  {p.run_dir.name}")
    return "\n".join(lines)


RETRAIN_FLAG = "hydra.sweeper.retrain_changed=true"
REPLACED = ".replaced"  # hidden: run readers skip it, so replaced runs never enter a fit


def changed_config_error(changed: Sequence[PlannedRun], sweep_dir: Path) -> UsageError:
    """One line: the runs whose folder holds a run of another config, grouped by what differs."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for p in changed:
        groups.setdefault(p.changes, []).append(p.run_dir.name)
    parts = []
    for changes, names in groups.items():
        shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more keys" if len(changes) > 4 else "")
        listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        parts.append(f"{shown} in {listed}")
    return UsageError(
        f"{len(changed)} run(s) in {sweep_dir} were trained with another config, nothing launched: "
        + " | ".join(parts)
        + f"; relaunch with {RETRAIN_FLAG} to train them again (the old runs move to "
        f"{sweep_dir / REPLACED}), or give another hydra.sweep.dir"
    )


def set_aside(changed: Sequence[PlannedRun], sweep_dir: Path, stamp: str) -> list[PlannedRun]:
    """Move the folders of changed runs to SWEEP/.replaced/STAMP/ and return the runs as new ones.

    A folder that another launch is training is refused (one UsageError naming them all), nothing moved.
    """
    busy = [str(p.run_dir) for p in changed if is_locked(p.run_dir)]
    if busy:
        raise UsageError(
            f"cannot train changed runs that another launch is training now: {', '.join(busy)}; wait for "
            "it to end, then relaunch"
        )
    target = sweep_dir / REPLACED / stamp
    target.mkdir(parents=True, exist_ok=True)
    for p in changed:
        p.run_dir.rename(target / p.run_dir.name)
    return [PlannedRun(p.overrides, p.run_dir, None, p.description) for p in changed]


# ---------------------------------------------------------------------------------------------------------
# Inside a run: preemption, time-outs, cancellation


class Interrupted(Exception):
    """A run of a sweep stopped by Ctrl-C (checkpoint kept, status `interrupted`), or not started after one.

    An ordinary exception, so that the launcher records the run and goes on collecting the others."""


_SWEEP_STOPPED = threading.Event()  # Ctrl-C reached this process while it ran a sweep or one of its runs


def sweep_stopped() -> bool:
    return _SWEEP_STOPPED.is_set()


def catch_ctrl_c() -> None:
    """From now on SIGINT in this process (a sweep's, or a worker's between runs) marks the sweep stopped
    instead of raising KeyboardInterrupt, so that each run can end at a step boundary and every result
    still comes back to the sweep (which then writes its summary)."""
    signal.signal(signal.SIGINT, lambda signum, frame: _SWEEP_STOPPED.set())


class StopRequest(threading.Event):
    """Set by a stop signal (`signum` says which); the trainer polls it at step boundaries.

    `where` completes the line printed for Ctrl-C, e.g. " at step 41" once the trainer has returned.
    """

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None
        self.where = ""


@contextmanager
def interruptible(in_sweep: bool = False) -> Iterator[StopRequest]:
    """Within the block, SIGINT (Ctrl-C), SIGUSR2 and SIGTERM set the yielded StopRequest instead of
    killing the process.

    The trainer, given it as `stop`, checkpoints at its next step boundary and returns with status
    `interrupted`. On leaving the block after such a signal:

    - inside a submitit job, for submitit's preemption signal (USR2; SLURM sends it on preemption and
      `signal_delay_s` before the time limit): submitit's own handler runs, which pickles the job for a
      requeue, calls `scontrol requeue` and exits; the requeued job resumes from the checkpoint;
    - Ctrl-C in a run of a sweep (`in_sweep`) raises `Interrupted`: the launcher records the run, and the
      sweep, which got the signal too, launches nothing more and says it once for all its runs;
    - otherwise the process exits with status 128 + signal, the checkpoint kept, so a relaunch resumes the
      run; for Ctrl-C after one line, `interrupted at step N; rerun the same command to resume`.
    """
    stop = StopRequest()

    def on_signal(signum: int, frame: object) -> None:
        if stop.signum is None:
            stop.signum = signum
        stop.set()

    signals = (signal.SIGINT, signal.SIGUSR2, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, on_signal)
    try:
        yield stop
    finally:  # also when the run raised after the signal: the process was asked to stop, so it stops
        for s, handler in previous.items():
            signal.signal(s, handler)
        if stop.signum is not None:
            _stop_process(stop, previous[stop.signum], in_sweep)


def _stop_process(stop: StopRequest, previous: object, in_sweep: bool) -> None:
    signum = stop.signum
    assert signum is not None
    if os.environ.get("SUBMITIT_EXECUTOR") and signum == signal.SIGUSR2 and callable(previous):
        previous(signum, None)  # submitit's handler: checkpoint (resubmit this job), requeue, exit
    if signum == signal.SIGINT and in_sweep:
        _SWEEP_STOPPED.set()
        raise Interrupted(f"interrupted{stop.where}")
    if signum == signal.SIGINT:
        print(f"interrupted{stop.where}; rerun the same command to resume", file=sys.stderr, flush=True)
    else:
        name = signal.Signals(signum).name
        print(f"stopped by {name}: checkpoint kept, relaunch to resume", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------------------
# The end of a sweep


@dataclass(frozen=True)
class RunOutcome:
    """How one run of the sweep ended: status (completed, diverged, failed, cancelled, running) and why."""

    run_dir: Path
    status: str
    detail: str = ""
    skipped: bool = False  # finished before this launch: not run again
    step: int | None = None  # where an interrupted run stopped (optimizer steps done)


@dataclass(frozen=True)
class SweepSummary:
    """The outcome of every run of a sweep (frozen; `format()` is what the sweep prints at the end)."""

    sweep_dir: Path
    runs: tuple[RunOutcome, ...]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.runs)

    @property
    def n_trained(self) -> int:
        return sum(not r.skipped for r in self.runs)

    @property
    def ok(self) -> bool:
        """No run failed or was cancelled (diverged runs are a result, not an error)."""
        return all(r.status in FINISHED for r in self.runs)

    def format_interrupted(self) -> str:
        """The one line a sweep ends with after Ctrl-C."""
        counts = ", ".join(f"{self.count(s)} {s}" for s in OUTCOMES if self.count(s))
        steps = [str(r.step) for r in self.runs if r.status == "interrupted" and r.step is not None]
        where = f" at step {', '.join(steps)}" if steps else ""
        return (
            f"interrupted{where} ({counts}; summary in {self.sweep_dir / SUMMARY_FILE}); "
            "rerun the same command to resume"
        )

    def format(self) -> str:
        n = len(self.runs)
        skipped = n - self.n_trained
        head = f"sweep {self.sweep_dir}: {n} runs, {self.n_trained} launched, {skipped} done before (skipped)"
        if self.n_trained == 0:
            head = f"sweep {self.sweep_dir}: all {n} runs already finished; nothing to train"
        counts = ", ".join(f"{self.count(s)} {s}" for s in OUTCOMES if self.count(s))
        lines = [head, f"  {counts}"]
        for r in self.runs:
            if r.status != "completed":
                lines.append(f"  {r.status:9s} {r.run_dir}" + (f"  ({r.detail})" if r.detail else ""))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "sweep_dir": str(self.sweep_dir),
            "counts": {s: self.count(s) for s in OUTCOMES},
            "launched": self.n_trained,
            "runs": [
                {"run": str(r.run_dir), "status": r.status, "detail": r.detail, "skipped": r.skipped}
                | ({"step": r.step} if r.step is not None else {})
                for r in self.runs
            ],
        }

    def save(self) -> Path:
        path = self.sweep_dir / SUMMARY_FILE
        atomic_write_json(path, self.to_json())
        return path


_CANCELLED = re.compile(r"\bCANCELLED\b")


def outcome(planned: PlannedRun, error: BaseException | None, skipped: bool) -> RunOutcome:
    """Classify a run after the launcher returned: its summary.json first, then the launcher's error."""
    summary = read_summary(planned.run_dir)
    status = summary.get("status")
    if status == "diverged":
        step = summary.get("diverged_at_step")
        detail = "non-finite loss" + (f" at step {step}" if step is not None else "")
        return RunOutcome(planned.run_dir, status, detail, skipped)
    if skipped:
        return RunOutcome(planned.run_dir, status or "completed", "", True)
    if error is None and status == "completed":
        return RunOutcome(planned.run_dir, status)
    if error is not None and _CANCELLED.search(str(error)):
        resumable = status in ("running", "interrupted")
        kept = "; its checkpoint is kept, a relaunch resumes it" if resumable else ""
        return RunOutcome(planned.run_dir, "cancelled", one_line(error)[:300] + kept)
    if status == "interrupted":
        step = summary.get("steps_done")
        where = f" at step {step}" if step is not None else ""
        detail = f"stopped{where}; relaunch to resume from its checkpoint"
        return RunOutcome(planned.run_dir, status, detail, step=step)
    if error is not None:
        return RunOutcome(planned.run_dir, "failed", one_line(error)[:300])
    if status == "running":
        return RunOutcome(planned.run_dir, "running", "stopped; relaunch to resume from its checkpoint")
    return RunOutcome(planned.run_dir, "failed", f"ended with summary status {status!r}")


def interrupted_outcome(planned: PlannedRun, error: BaseException | None, since: float) -> RunOutcome:
    """How a run stands when the sweep (launched at time `since`) was interrupted: `pending` if it never
    started, else what its summary says."""
    try:
        started = (planned.run_dir / "summary.json").stat().st_mtime >= since
    except OSError:
        started = False
    if not started and (error is None or isinstance(error, Interrupted)):
        return RunOutcome(planned.run_dir, "pending", "not started: the sweep was interrupted")
    return outcome(planned, error, skipped=False)
