"""train.lr=law / train.batch_size=law: the trainer takes its hyperparameters from `scaling hparams`."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir

from scaling.errors import UsageError
from scaling.recipe import AUTO_MIN_STEPS, auto_lr, read_hparam_laws
from scaling.shapes import n_params
from scaling.training.config import CONFIG_DIR, plan_run, register_resolvers

D = 5_000_000
BASE = ["model=tiny_10k", f"train.tokens={D}"]


@pytest.fixture(scope="module")
def hydra_configs(scaling_cache):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        yield


@pytest.fixture
def law_file(tmp_path):
    """A document as `scaling hparams --json` writes it (lr 0.5 N^-0.3 D^0.05, batch 10 D^0.4 tokens)."""
    from scaling.study.hparams import HparamLaws, PowerLaw

    laws = HparamLaws(PowerLaw(0.5, -0.3, 0.05), PowerLaw(10.0, 0.0, 0.4), ())
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps(laws.to_json()))
    return path


def test_law_sets_lr_and_batch_from_the_file(hydra_configs, law_file):
    plan = plan_run(compose("config", overrides=[*BASE, "train.lr=law", "train.batch_size=law",
                                                 f"train.hparams={law_file}"]))
    n = n_params(plan.shape)
    assert plan.lr == pytest.approx(0.5 * n**-0.3 * D**0.05)
    assert plan.lr != pytest.approx(auto_lr(plan.shape, n))
    want = 10.0 * D**0.4 / plan.shape.n_ctx  # 37 sequences, below the cap of D / AUTO_MIN_STEPS tokens
    assert want * plan.shape.n_ctx < D / AUTO_MIN_STEPS
    assert plan.batch_size == 32  # rounded to a power of two as the auto batch


def test_law_for_one_and_a_number_for_the_other(hydra_configs, law_file):
    plan = plan_run(compose("config", overrides=[*BASE, "train.lr=law", "train.batch_size=8",
                                                 f"train.hparams={law_file}"]))
    assert plan.batch_size == 8
    assert plan.lr == pytest.approx(0.5 * n_params(plan.shape) ** -0.3 * D**0.05)


def test_law_without_a_file_or_with_a_bad_one_is_refused(hydra_configs, tmp_path):
    with pytest.raises(UsageError, match="need train.hparams"):
        plan_run(compose("config", overrides=[*BASE, "train.lr=law"]))
    bad = tmp_path / "fit.json"
    bad.write_text(json.dumps({"format": "scaling.fit/1"}))
    with pytest.raises(UsageError, match="format"):
        plan_run(compose("config", overrides=[*BASE, "train.batch_size=law", f"train.hparams={bad}"]))
    with pytest.raises(UsageError, match="cannot read"):
        read_hparam_laws(tmp_path / "missing.json")


def test_a_run_trains_with_the_law_values(law_file, tmp_path):
    from helpers import BIN, run_process
    from omegaconf import OmegaConf

    run_dir = tmp_path / "run"
    done = run_process([BIN / "scaling-train", "model=tiny_10k", "train.tokens=2e5", "train.lr=law",
                        "train.batch_size=law", f"train.hparams={law_file}", "train.evals=2",
                        "train.eval_tokens=2048", "train.threads=1", f"hydra.run.dir={run_dir}"],
                       cwd=tmp_path)
    assert done.status == 0, done.err[-2000:]
    saved = OmegaConf.load(run_dir / "config.yaml")
    n = json.loads((run_dir / "summary.json").read_text())["n_params"]
    assert saved.train.lr == pytest.approx(0.5 * n**-0.3 * 2e5**0.05)  # the law's value, not `law`
    assert saved.train.batch_size == 8  # 10 D^0.4 = 1.3k tokens, capped at D / 200 = 1000: 8 sequences
    assert "completed: val_loss" in done.out


def test_plan_with_hparams_proposes_the_law_batches_and_the_trainer_agrees(tmp_path, cli):
    import subprocess

    import yaml
    from helpers import BIN

    from scaling.recipe import auto_batch_size
    from scaling.shapes import Shape
    from scaling.study.hparams import HparamLaws, PowerLaw
    from scaling.study.planning import realise

    law_file = tmp_path / "small_batches.json"  # B_opt = D^0.5 tokens: below the auto batch's D / 200 cap
    laws = HparamLaws(PowerLaw(0.5, -0.3, 0.05), PowerLaw(1.0, 0.0, 0.5), ())
    law_file.write_text(json.dumps(laws.to_json()))

    out = tmp_path / "mysweeps" / "sweep" / "next.yaml"
    result = cli("plan", "--budget", "8e9", "--target-params", "1M", "--optimal", "--min-params", "1e4",
                 "--max-params", "1e5", "--n-ctx", "16", "--max-runs", "5", "--hparams", law_file,
                 "--out", out, "--json", tmp_path / "plan.json")
    assert result.status == 0, result.err
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["hparams"] == str(law_file.resolve())
    laws = read_hparam_laws(law_file)
    for r in doc["runs"]:  # the planner's batches are the laws' (here all at the minimum of 8)
        shape = Shape(r["n_layer"], r["d_model"], r["n_head"], r["n_ctx"])
        assert r["batch_size"] == laws.law_batch_size(shape, r["N"], r["D"])
    shape = Shape(2, 64, 4, 16)  # the planner's candidates at a D where the two batches differ
    assert realise(shape, 2e6, laws).batch_size == laws.law_batch_size(shape, n_params(shape), 2e6) == 64
    assert realise(shape, 2e6).batch_size == auto_batch_size(shape, n_params(shape), 2e6) != 64
    train = yaml.safe_load(out.read_text().split("\n", 1)[1])["train"]
    assert train["lr"] == "law" and train["hparams"] == str(law_file.resolve())
    dry = subprocess.run([str(BIN / "scaling-train"), "--config-dir", str(out.parents[1]), "-m",
                          "+sweep=next", "hydra.sweeper.dry_run=true"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    listed = sorted(int(line.split("D=")[1].split()[0].replace(",", "")) for line in dry.stdout.splitlines()
                    if "N=" in line)
    assert listed == sorted(r["D"] for r in doc["runs"])  # the trainer's own batches give the same tokens
