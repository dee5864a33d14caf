"""Planning a sweep (what `hydra.sweeper.dry_run=true` does before it prints): Hydra's composition of every
point against the sweeper's, which composes once per set of config-group choices (`JobComposer`).

Both plan the same sweep in this process, one after the other: every point composed, checked by the
trainer's checks and given its run folder (`scaling.training.sweep.plan_sweep`). Prints each time (wall
and CPU), exits 1 unless both plans agree run for run (overrides, folder, description, folder state), then
`cpu_ratio=` (steadier on a shared machine) and `ratio=`, baseline / new wall time. The default sweep is
`+sweep=grid` with 10 seeds: 200 points, 4 model presets (a group override) x 5 token counts x 10 seeds
(value overrides).

    python bench/sweep_dryrun.py [--repeat 1] [ARGUMENT ...]     # e.g. +sweep=lr_batch train.seed=0,1
"""

from __future__ import annotations

import argparse
import sys
import time

from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from hydra_plugins.scaling_sweeps.compose import JobComposer
from scaling.training.config import CONFIG_DIR, register_resolvers
from scaling.training.sweep import PlannedRun, plan_sweep

DEFAULT_SWEEP = ["+sweep=grid", "train.seed=" + ",".join(str(s) for s in range(10))]


def plan(arguments: list[str], reuse: bool) -> tuple[tuple[float, float], list[PlannedRun]]:
    """((wall, CPU) seconds to plan the sweep of these command-line arguments, its plan)."""
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration("config", overrides=arguments, run_mode=RunMode.MULTIRUN)
    start, cpu = time.perf_counter(), time.process_time()
    axes = [f"{key}={value}" for key, value in master.hydra.sweeper.params.items()] + arguments
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(axes), None)
    planned = plan_sweep(jobs, JobComposer(loader, master, reuse=reuse))
    return (time.perf_counter() - start, time.process_time() - cpu), planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="plans per path, interleaved; fastest counts")
    parser.add_argument(
        "arguments", nargs="*", help=f"scaling-train -m arguments (default {' '.join(DEFAULT_SWEEP)})"
    )
    args = parser.parse_args()
    arguments = args.arguments or DEFAULT_SWEEP
    register_resolvers()
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    plans: dict[bool, list[PlannedRun]] = {}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        for _ in range(args.repeat):
            for reuse in (False, True):  # the baseline first
                seconds, plans[reuse] = plan(arguments, reuse)
                times[reuse].append(seconds)
    (baseline, baseline_cpu), (new, new_cpu) = min(times[False]), min(times[True])
    n = len(plans[True])
    print(f"sweep: scaling-train -m {' '.join(arguments)}: {n} points")
    for name, wall, cpu in (
        ("baseline (Hydra composes every point)", baseline, baseline_cpu),
        ("new (one composition per set of group choices)", new, new_cpu),
    ):
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU ({1e3 * wall / n:.1f} ms a point)")
    if plans[True] != plans[False]:
        differ = [a.run_dir.name for a, b in zip(plans[False], plans[True], strict=False) if a != b]
        sys.exit(f"error: the two plans differ ({len(differ)} runs, e.g. {differ[:3]})")
    print(f"cpu_ratio={baseline_cpu / new_cpu:.2f}")
    print(f"ratio={baseline / new:.2f}")


if __name__ == "__main__":
    main()
