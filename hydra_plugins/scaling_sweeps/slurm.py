"""`hydra/launcher=slurm`: hydra-submitit-launcher's SLURM launcher, adapted for long sweeps.

Differences from the upstream launcher:
- a job that ends without a result (cancelled, killed, out of time-outs) is reported in its JobReturn
  with its SLURM state instead of raising and abandoning the wait for the rest of the array;
- `tasks_per_node: null` means one task per GPU (torch DDP), one task without GPUs;
- it logs the job array's id, so a user can `squeue -j` / `scancel` it;
- a job array that sbatch refuses (resources the cluster lacks) is a UsageError: one `error:` line.

Preemption and time-outs: submitit signals the job with USR2 (on preemption, and `signal_delay_s`
before the time limit); `scaling.training.sweep.interruptible` lets the trainer checkpoint at a step
boundary, then submitit's checkpoint (this launcher's `checkpoint`, inherited: resubmit the same job) requeues
it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

from scaling.errors import UsageError
from scaling.training.sweep import one_line

log = logging.getLogger(__name__)


class ScalingSlurmLauncher(SlurmLauncher):
    """Submits the sweep as one job array and reports each job's end, whatever it was (module docstring)."""

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        import submitit  # lazy, as upstream: plugin discovery stays fast
        from submitit.core.utils import FailedJobError, FailedSubmissionError

        assert self.config is not None
        params = dict(self.params)
        folder = params.pop("submitit_folder")
        executor = submitit.AutoExecutor(
            folder=folder, cluster="slurm", slurm_max_num_timeout=params.pop("max_num_timeout")
        )
        if params.get("tasks_per_node") is None:
            params["tasks_per_node"] = max(1, params.get("gpus_per_node") or 0)
        queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in queue_keys else f"slurm_{k}": v for k, v in params.items()})

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        args = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:  # sbatch's complaint (bad resources, partition, ...) comes back in the error: print it once
            with contextlib.redirect_stderr(io.StringIO()):
                jobs = executor.map_array(self, *zip(*args, strict=True))
        except (FailedJobError, FailedSubmissionError) as exc:
            raise UsageError(f"SLURM refused the job array, nothing submitted: {one_line(exc)}") from None
        array_id = jobs[0].job_id.split("_")[0]
        log.info(f"submitted {len(jobs)} runs as SLURM job array {array_id} (logs in {folder})")
        return [_result(job, list(o)) for job, o in zip(jobs, job_overrides, strict=True)]


def _result(job: Any, overrides: list[str]) -> JobReturn:
    """The job's JobReturn; for a job that left no result, a failed one naming the SLURM state."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        return job.results()[0]
    except (UncompletedJobError, FailedJobError) as exc:
        state = job.get_info(mode="force").get("State") or job.state
        reason = "no result" if isinstance(exc, UncompletedJobError) else "error in the job, see its log"
        error = RuntimeError(f"SLURM job {job.job_id} ended {state} ({reason}: {job.paths.stderr})")
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=error)
