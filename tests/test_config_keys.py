"""One home for the `train` defaults and for the execution keys, both in sweeps/config.yaml.

A key that does not name a run's folder must also be one a resumed run may change (it is left out of the
run's identity), and the other way round; otherwise relaunching a command either trains a run again in a
new folder or refuses to resume it. Every key of `train` is tried.
"""

from __future__ import annotations

import re

import pytest
from helpers import BIN, assert_usage_error, run_process
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from scaling.errors import UsageError
from scaling.training.config import (
    CONFIG_DIR,
    check_keys,
    config_schema,
    execution_keys,
    identity,
    plan_run,
    register_resolvers,
    resolved_config,
    train_default,
)

BASE = ["model=tiny_10k", "train.tokens=20k", "train.batch_size=4"]
# A second valid value of every key of `train`, with any override it needs besides.
CHANGES = {
    "tokens": ["train.tokens=30k"],
    "tokens_per_param": ["train.tokens=null", "train.tokens_per_param=3"],
    "batch_size": ["train.batch_size=8"],
    "micro_batch_size": ["train.micro_batch_size=2"],
    "lr": ["train.lr=1e-3"],
    "hparams": ["train.hparams=/nowhere/hparams.json"],  # read only for lr=law or batch_size=law
    "warmup_frac": ["train.warmup_frac=0.1"],
    "min_lr_ratio": ["train.min_lr_ratio=0.2"],
    "weight_decay": ["train.weight_decay=0.0"],
    "beta1": ["train.beta1=0.8"],
    "beta2": ["train.beta2=0.99"],
    "grad_clip": ["train.grad_clip=0.5"],
    "seed": ["train.seed=1"],
    "device": ["train.device=cpu"],
    "threads": ["train.threads=1"],
    "dtype": ["train.dtype=fp32"],
    "compile": ["train.compile=false"],
    "evals": ["train.evals=5"],
    "eval_tokens": ["train.eval_tokens=2048"],
    "checkpoint_every_s": ["train.checkpoint_every_s=60"],
    "keep_checkpoint": ["train.keep_checkpoint=true"],
    "progress": ["train.progress=false"],
    "peak_flops": ["train.peak_flops=1e12"],
    "loggers": ["train.loggers=[tensorboard]"],
    "schedule": ["train.schedule=wsd"],
    "decay_frac": ["train.decay_frac=0.3"],
    "decay_shape": ["train.decay_shape=linear"],
    "save_at": ["train.save_at=[10k]"],
    "branch_from": ["train.schedule=wsd", "train.branch_from=/nowhere/parent"],
    "branch_tokens": ["train.schedule=wsd", "train.branch_from=/nowhere/parent", "train.branch_tokens=10k"],
}


def folder_and_identity(overrides: list[str]) -> tuple[str, dict]:
    """(the run's folder name as Hydra composes it, the part of its config that decides its result)."""
    cfg = compose("config", overrides=overrides, return_hydra_config=True)
    folder = str(cfg.hydra.job.override_dirname)
    with open_dict(cfg):
        del cfg["hydra"]  # its interpolations need a running Hydra app
    return folder, identity(resolved_config(cfg, plan_run(cfg)))


@pytest.fixture(scope="module")
def hydra_configs(scaling_cache):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        yield


def test_a_key_names_the_run_folder_exactly_when_it_changes_the_run(hydra_configs):
    assert set(CHANGES) == set(OmegaConf.load(CONFIG_DIR / "config.yaml").train)  # every key is tried
    base_folder, base_identity = folder_and_identity(BASE)
    assert base_folder == ",".join(sorted(BASE))
    named = set()
    for key, overrides in CHANGES.items():
        folder, run_identity = folder_and_identity([*BASE, *overrides])
        if folder != base_folder:
            named.add(key)
        assert (folder == base_folder) == (run_identity == base_identity), (key, folder)
    assert execution_keys() == set(CHANGES) - named
    assert "dtype" in execution_keys()  # the two lists disagreed on it before they had one home


def test_a_config_without_a_train_key_takes_its_default_from_config_yaml(hydra_configs):
    composed = plan_run(compose("config", overrides=BASE))
    optional = ["evals", "eval_tokens", "checkpoint_every_s", "warmup_frac", "min_lr_ratio", "weight_decay",
                "beta1", "beta2", "grad_clip", "seed", "lr", "micro_batch_size"]  # fmt: skip
    sparse = plan_run(compose("config", overrides=[*BASE, *(f"~train.{key}" for key in optional)]))
    assert sparse == composed
    assert (composed.evals, composed.eval_tokens, composed.checkpoint_every_s) == (
        train_default("evals"), train_default("eval_tokens"), train_default("checkpoint_every_s"))


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["+train.tokns=1M"], "unknown config key train.tokns (did you mean train.tokens?)"),
        (["+model.nlayer=7"], "model.nlayer (did you mean model.n_layer?)"),
        (["+data.uniq_tokens=1M"], "data.uniq_tokens (did you mean data.unique_tokens?)"),
        (["+trian={tokens: 1}"], "unknown config key trian (did you mean train?)"),
    ],
)
def test_a_key_no_run_reads_is_refused_with_the_nearest_one(hydra_configs, overrides, says):
    with pytest.raises(UsageError, match=re.escape(says)):
        plan_run(compose("config", overrides=[*BASE, *overrides]))


def test_every_shipped_model_and_sweep_holds_only_known_keys(hydra_configs):
    schema = config_schema()
    assert {"n_layer", "target_params", "vocab_size"} <= schema["model"] and "unique_tokens" in schema["data"]
    for group, option in (("model", "model={}"), ("sweep", "+sweep={}")):
        for name in sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")):
            check_keys(compose("config", overrides=[*BASE, option.format(name)]))


def test_scaling_train_refuses_a_misspelt_key_and_leaves_no_folder(tmp_path):
    done = run_process([BIN / "scaling-train", *BASE, "+train.tokns=1M", "+model.nlayer=7"], cwd=tmp_path)
    assert_usage_error(done, "train.tokns (did you mean train.tokens?)", "model.n_layer?")
    assert list(tmp_path.iterdir()) == []  # not even Hydra's runs/train/<name>/.hydra and train.log
