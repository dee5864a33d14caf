"""The sweeper's composition of sweep points (`JobComposer`: the config-group choices composed once per set,
plain values applied to a copy) against Hydra's own composition of every point: the same configs, run
folders and `.hydra/` files, byte for byte, and the same errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import run_job
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf

from hydra_plugins.scaling_sweeps.compose import JobComposer
from scaling.training.config import CONFIG_DIR, register_resolvers
from scaling.training.sweep import plan_sweep

# Group overrides (model=, data=, +sweep=) mixed with value overrides: plain, `+key=` additions, `++key=`,
# `~key` deletions, lists, interpolations (`${sweep.base_lr}`, the sweeps' resolvers, `${hydra:job...}` in the
# cooldown branches), a dict merged into a group's node, and the two kinds in any order.
JOBS = [
    ["+sweep=grid", "model=tiny_10k", "train.tokens=250k", "train.seed=0"],
    ["+sweep=grid", "model=tiny_10k", "train.tokens=500k", "train.seed=1"],
    ["train.seed=3", "+sweep=grid", "train.tokens=2M", "model=tiny_30k"],
    ["+sweep=grid", "model=tiny_30k", "data=synthetic", "train.tokens=1M", "+sweep.base_lr=0.002",
     "train.lr=${sweep.base_lr}", "++train.seed=5", "~train.keep_checkpoint"],
    ["+sweep=grid", "model=tiny_10k", "model={n_layer: 2}", "train.tokens=1M"],
    ["+sweep=lr_batch", "model.target_params=4e4", "sweep.lr_scale=0.5", "sweep.batch_scale=2"],
    ["+sweep=lr_batch", "model.target_params=1.6e5", "train.tokens_per_param=40", "sweep.lr_scale=4"],
    ["+sweep=cooldowns", "model.target_params=4e4", "sweep.point=parent", "train.seed=0"],
    ["+sweep=cooldowns", "model.target_params=4e4", "sweep.point=5", "train.seed=0"],
    ["+sweep=cooldowns", "model.target_params=8e4", "sweep.ends=[4,8]", "sweep.point=8", "train.seed=0"],
    # a hydra.* override: composed by Hydra in full (it changes what Hydra derives after composing)
    ["+sweep=grid", "model=tiny_10k", "train.tokens=250k", "hydra.job.config.override_dirname.kv_sep=-"],
]
GROUP_SETS = 5  # grid with tiny_10k, tiny_30k, tiny_30k and synthetic data; lr_batch; cooldowns


@pytest.fixture
def hydra_sweep(tmp_path):
    """(Hydra's config loader, the master config of a sweep into tmp_path/sweep) as the sweeper gets them."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", overrides=[f"hydra.sweep.dir={tmp_path / 'sweep'}"], run_mode=RunMode.MULTIRUN
        )
        yield loader, master
        HydraConfig.instance().set_config(master)


def launched(composer: JobComposer, job: list[str]) -> dict[str, str]:
    """What Hydra's run_job makes of a job's config, as a launcher runs it: the run folder's name, its
    `.hydra/` files, and the job's resolved config (read with HydraConfig set, as in the job)."""
    cfg = composer(job)
    context = HydraContext(config_loader=composer.loader, callbacks=Callbacks(cfg))
    ret = run_job(
        lambda task_cfg: OmegaConf.to_yaml(task_cfg, resolve=True),
        cfg,
        "hydra.sweep.dir",
        "hydra.sweep.subdir",
        context,
        configure_logging=False,
    )
    run_dir = Path(cfg.hydra.runtime.output_dir)
    files = {p.name: p.read_text() for p in sorted((run_dir / ".hydra").iterdir())}
    shutil.rmtree(run_dir)  # the other composition writes the same folder next
    assert set(files) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    job = {"folder": run_dir.name, "unresolved": OmegaConf.to_yaml(cfg), "resolved": ret.return_value}
    return job | files


def test_each_job_comes_out_as_hydra_composes_it(hydra_sweep, monkeypatch):
    loader, master = hydra_sweep
    by_hydra = JobComposer(loader, master, reuse=False)
    full = [launched(by_hydra, job) for job in JOBS]
    compositions = []
    real = loader.load_sweep_config
    monkeypatch.setattr(loader, "load_sweep_config", lambda m, o: compositions.append(o) or real(m, o))
    composer = JobComposer(loader, master)
    fast = [launched(composer, job) for job in JOBS]
    for job, a, b in zip(JOBS, full, fast, strict=True):
        for key in a:
            assert a[key] == b[key], (job, key)
    assert len({r["folder"] for r in fast}) == len(JOBS)
    assert "lr: 0.002" in fast[3]["resolved"] and "n_layer: 2" in fast[4]["resolved"]
    assert "branch_from: null" not in fast[8]["resolved"]  # a branch names its parent's folder
    assert full[8]["resolved"].count("sweep.point=parent") == 1
    assert len(compositions) == GROUP_SETS + 1  # one per group set, and the hydra.* job


def test_a_sweep_plans_the_same_runs_and_refuses_the_same_points(hydra_sweep):
    loader, master = hydra_sweep
    good = JOBS[:-1]
    by_hydra = plan_sweep(good, JobComposer(loader, master, reuse=False))
    assert plan_sweep(good, JobComposer(loader, master)) == by_hydra
    bad = [
        ["+sweep=grid", "model=tiny_10k", "train.lrr=1"],  # no such key: needs +
        ["+sweep=grid", "model=tiny_10k", "+train.seed=1"],  # + on a key that is there
        ["+sweep=grid", "model=tiny_10k", "~train.nokey"],
        ["+sweep=grid", "model=tiny_nope"],
    ]
    for job in bad:
        with pytest.raises(Exception) as by_hydra:
            JobComposer(loader, master, reuse=False)(job)
        with pytest.raises(Exception) as by_composer:
            JobComposer(loader, master)(job)
        assert type(by_composer.value) is type(by_hydra.value), job
        assert str(by_composer.value) == str(by_hydra.value), job
