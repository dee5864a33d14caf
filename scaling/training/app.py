"""`scaling-train`: the Hydra app that composes one run's config from `sweeps/` and trains it.

    scaling-train model=tiny_100k train.tokens=1M          # one run, folder runs/train/<overrides>
    scaling-train -m +sweep=NAME                           # a sweep (see docs/sweeps.md)
    scaling-train --config-dir DIR -m +sweep=NAME          # a sweep file of yours, DIR/sweep/NAME.yaml

Each run's folder is its Hydra output folder; rerunning a command resumes its run, or does nothing if the
run has finished. Bad input prints one `error:` line and exits with status 2.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from scaling.errors import UsageError
from scaling.training.config import CONFIG_DIR, plan_run, register_resolvers
from scaling.training.sweep import Interrupted, catch_ctrl_c, interruptible, one_line, sweep_stopped

MAX_ARGUMENT = 4096  # characters: PATH_MAX, longer than any override a user types
OWN_CONFIGS = "configs of your own: --config-dir DIR with DIR/sweep/NAME.yaml, DIR/model/NAME.yaml"


def run(cfg: DictConfig) -> dict:
    """Train the run of `cfg` in the current Hydra job's output folder and return its summary."""
    plan_run(cfg)  # bad input fails here, quickly: torch is imported only once a run really starts
    from scaling.training.trainer import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    if in_sweep:
        catch_ctrl_c()  # a worker of the local launcher that gets Ctrl-C between runs lives on
        if sweep_stopped():
            raise Interrupted("not started: the sweep was interrupted")
    # Ctrl-C, SIGUSR2, SIGTERM: checkpoint at a step boundary (requeue under SLURM), status interrupted
    with interruptible(in_sweep) as stop:
        summary = train(cfg, run_dir, stop=stop)
        stop.where = f" at step {summary.get('steps_done', 0)}"
    loss = summary.get("val_loss")
    shown = f"val_loss {loss:.4f} nats/token" if isinstance(loss, float) else "no loss"
    size = f"N={summary['n_params']:,} params, D={summary['tokens']:,} tokens"
    print(f"{summary['status']}: {shown}, {size} -> {run_dir}")
    return summary


# An absolute path: with a console script Hydra would otherwise look for a `sweeps` Python package.
@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> dict:
    try:
        return run(cfg)
    except UsageError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep records this run as failed and goes on with the others
        print(f"error: {exc}", file=sys.stderr)  # here, not after Hydra's own "Error executing job" line
        _remove_unstarted(Path(HydraConfig.get().runtime.output_dir))
        raise SystemExit(2) from None


def _remove_unstarted(run_dir: Path) -> None:
    """Remove what Hydra wrote for a run refused before it started (the folder, holding only .hydra/ and
    train.log), and the folders above it that this leaves empty, so that bad input leaves nothing behind.
    A folder holding anything else (a run to resume, the working directory itself) is kept."""
    run_dir, cwd = run_dir.resolve(), Path.cwd().resolve()
    if cwd.is_relative_to(run_dir) or {p.name for p in run_dir.iterdir()} - {".hydra", "train.log"}:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:  # runs/train, runs: made by Hydra for this run
        if parent == cwd or not parent.is_relative_to(cwd) or any(parent.iterdir()):
            break
        parent.rmdir()


def main() -> None:
    long = next((a for a in sys.argv[1:] if len(a) > MAX_ARGUMENT), None)
    if long is not None:  # Hydra's override parser raises a bare ValueError on a >4300-digit number
        print(f"error: an argument of {len(long)} characters is too long (at most {MAX_ARGUMENT}): "
              f"{long[:40]!r}...; put long sweep lists in a sweep file ({OWN_CONFIGS})", file=sys.stderr)
        sys.exit(2)
    register_resolvers()
    # Before torch loads OpenMP. On cores that are already busy, OpenMP threads that spin while they wait
    # slowed tiny runs 3-8x here; sleeping ones cost ~40 % on idle cores. Only speed changes, not results.
    if os.getloadavg()[0] >= (os.cpu_count() or 1):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Hydra prints its own errors and exits with 1; told HYDRA_FULL_ERROR it raises them, so that bad input
    # (an unknown preset or sweep, a bad override) becomes one `error:` line and exit status 2.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    except (UsageError, HydraException, OmegaConfBaseException) as exc:
        hint = f"; {OWN_CONFIGS}" if isinstance(exc, MissingConfigException) else ""
        print(f"error: {one_line(exc)}{hint}", file=sys.stderr)
        sys.exit(2)
    except (OSError, ValueError) as exc:  # Hydra writes .hydra/ and train.log: a full or read-only folder
        cause = exc if isinstance(exc, OSError) else exc.__cause__  # logging wraps it in a ValueError
        if not isinstance(cause, OSError):
            raise
        where = f": {os.fsdecode(cause.filename)}" if cause.filename is not None else ""
        print(f"error: {cause.strerror or cause}{where}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
