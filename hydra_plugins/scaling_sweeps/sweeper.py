"""`hydra/sweeper=scaling`: Hydra's basic sweeper (same grid expansion), made safe to relaunch.

Before launch it composes and checks every point (`scaling.training.sweep.plan_sweep`), including the config
saved in each run's folder, and, for SLURM, that the cluster answers; it launches only the runs that are not
finished yet, and ends with a summary, after Ctrl-C too.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.scaling_sweeps.compose import JobComposer
from scaling.errors import UsageError
from scaling.training import sweep as sw

log = logging.getLogger(__name__)


class ScalingSweeper(BasicSweeper):
    """Hydra's BasicSweeper that plans the whole sweep first; options `retry_diverged`, `retrain_changed`,
    `dry_run`."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        retry_diverged: bool = False,
        retrain_changed: bool = False,
        dry_run: bool = False,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.retry_diverged = retry_diverged
        self.retrain_changed = retrain_changed
        self.dry_run = dry_run

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        # Bad input raises UsageError: `scaling-train` prints it as one `error:` line, exit status 2.
        try:
            compose = JobComposer(self.hydra_context.config_loader, self.config)
            planned = sw.plan_sweep(jobs, compose)
        finally:
            HydraConfig.instance().set_config(self.config)  # `compose` set each job's, as run_job does
        launcher = self.config.hydra.launcher
        slurm = str(launcher.get("_target_", "")).endswith("SlurmLauncher")
        if slurm:
            sw.check_slurm(launcher.get("partition"))

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        if self.dry_run:
            print(sw.format_plan(planned, sweep_dir), flush=True)
            return None
        changed = [p for p in planned if p.changes]
        if changed and not self.retrain_changed:
            raise sw.changed_config_error(changed, sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if changed:
            renewed = {p.run_dir: p for p in sw.set_aside(changed, sweep_dir, time.strftime("%Y%m%d-%H%M%S"))}
            planned = [renewed.get(p.run_dir, p) for p in planned]
        todo = [p for p in planned if not p.finished(self.retry_diverged)]
        for p in todo:
            if p.status == "diverged":  # a retry starts afresh; the diverged attempt stays beside it
                p.run_dir.rename(
                    p.run_dir.with_name(f"{p.run_dir.name}.diverged-{time.strftime('%Y%m%d-%H%M%S')}")
                )
        skipped = len(planned) - len(todo)
        if skipped:
            log.info(f"{skipped} of {len(planned)} runs already finished in {sweep_dir}: not launched again")

        errors: dict[Path, BaseException | None] = {}
        size = self.max_batch_size or len(todo) or 1
        # Cooldown branches wait for their parents: launched in a later wave (each wave in batches).
        batches = [wave[i : i + size] for wave in sw.waves(todo) for i in range(0, len(wave), size)]
        since = time.time()
        if not slurm:  # SLURM jobs run on without this process: there Ctrl-C stops only the waiting
            sw.catch_ctrl_c()
        try:
            start = 0
            for batch in batches:
                if sw.sweep_stopped():
                    break
                results = self.launcher.launch([list(p.overrides) for p in batch], initial_job_idx=start)
                start += len(batch)
                for p, ret in zip(batch, results, strict=True):
                    errors[p.run_dir] = error = _error_of(ret)
                    if error is not None and not isinstance(error, UsageError | sw.Interrupted):
                        log.error(f"run {p.run_dir} failed", exc_info=error)  # a bug or a crash: show where
        except KeyboardInterrupt:  # SLURM: stop waiting; the jobs go on
            pass
        except Exception:
            if not sw.sweep_stopped():
                raise  # a launcher's worker that Ctrl-C killed between runs ends the launch: not a bug

        if sw.sweep_stopped() or len(errors) < len(todo):  # Ctrl-C: say where every run stands, once
            launched = {p.run_dir for p in todo}
            runs = tuple(
                sw.interrupted_outcome(p, errors.get(p.run_dir), since)
                if p.run_dir in launched
                else sw.outcome(p, None, skipped=True)
                for p in planned
            )
            summary = sw.SweepSummary(sweep_dir, runs)
            summary.save()
            print(summary.format_interrupted(), file=sys.stderr, flush=True)
            raise SystemExit(128 + signal.SIGINT)
        summary = sw.SweepSummary(
            sweep_dir,
            tuple(sw.outcome(p, errors.get(p.run_dir), p.run_dir not in errors) for p in planned),
        )
        summary.save()
        print(summary.format(), flush=True)
        if not summary.ok:
            raise SystemExit(1)
        return summary


def _error_of(ret: JobReturn) -> BaseException | None:
    if ret.status == JobStatus.COMPLETED:
        return None
    value = ret._return_value
    return value if isinstance(value, BaseException) else RuntimeError(f"job ended {ret.status.name}")
