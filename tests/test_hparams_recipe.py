"""train.lr=law / train.batch_size=law: the trainer takes its hyperparameters from `scaling hparams`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from scaling.errors import UsageError
from scaling.recipe import AUTO_MIN_STEPS, auto_lr, read_hparam_laws
from scaling.shapes import Shape, n_params
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
    # the report's note of the recipe reads the run folder's saved config: the law file, not `auto`
    from scaling.runs.table import collect_runs
    from scaling.study.hparams import LAW, recipes_used

    used = recipes_used(collect_runs(tmp_path))
    assert [(g.lr, g.batch, g.hparams, g.runs) for g in used.groups] == [(LAW, LAW, str(law_file), 1)]
    assert used.laws[str(law_file)] == "lr_opt = 0.5 N^-0.300 D^0.050, B_opt = 10 N^0.000 D^0.400 tokens"


def _runs_with_configs(law_file, tmp_path):
    """A run table as `scaling runs` writes it: 20 runs of law_table, their saved lr, batch and shape; runs
    0-7 with the fixed recipe, 8-15 with the laws of `law_file`, 16-17 with the law's LR and the recipe's
    batch, 18-19 with a hand-set LR (a grid point)."""
    from helpers import law_table

    from scaling.recipe import auto_batch_size

    table = law_table()
    laws = read_hparam_laws(law_file)
    rows = []
    for i, (n, d) in enumerate(zip(table["N"], table["D"], strict=True)):
        shape = Shape(4, 256, 4, 256)
        recipe = {"train.lr": auto_lr(shape, n), "train.batch_size": auto_batch_size(shape, n, d),
                  "train.hparams": None}
        law = {"train.lr": laws.law_lr(n, d * 1.01),  # D rounded to whole steps: 1 % off the requested
               "train.batch_size": laws.law_batch_size(shape, n, d), "train.hparams": str(law_file)}
        row = recipe if i < 8 else law if i < 16 else {**recipe, "train.lr": law["train.lr"],
                                                         "train.hparams": str(law_file)}
        if i >= 18:
            row = {**recipe, "train.lr": 2 * recipe["train.lr"]}
        rows.append({**row, "n_layer": 4, "d_model": 256, "n_head": 4, "n_ctx": 256})
    return pd.concat([table, pd.DataFrame(rows)], axis=1)


def test_recipes_used_tells_recipe_law_and_hand_set_values_apart(law_file, tmp_path):
    from scaling.study.hparams import LAW, RECIPE, SET, RecipeUse, recipes_used

    table = _runs_with_configs(law_file, tmp_path)
    used = recipes_used(table)
    groups = {(g.lr, g.batch, g.hparams): g.runs for g in used.groups}
    assert groups == {(RECIPE, RECIPE, None): 8, (LAW, LAW, str(law_file)): 8,
                      (LAW, RECIPE, str(law_file)): 2, (SET, RECIPE, None): 2}
    text = used.describe()
    assert "8 runs: peak LR and batch from the fixed recipe (`auto`" in text
    assert f"8 runs: peak LR and batch from the hyperparameter laws of {law_file}" in text
    assert f"2 runs: peak LR from the hyperparameter laws of {law_file}, batch from the fixed recipe" in text
    assert "2 runs: peak LR from values set per run (neither recipe)" in text
    assert RecipeUse.from_json(json.loads(json.dumps(used.to_json()))) == used
    # not recorded: a bare run table; a law file that is gone is named, its values taken as the law's
    assert recipes_used(table[["N", "D", "C", "loss"]]) is None
    gone = table.assign(**{"train.hparams": table["train.hparams"].replace(str(law_file), "gone.json")})
    assert "gone.json: cannot be read here" in recipes_used(gone).describe()


def test_report_says_which_recipe_the_runs_used(law_file, tmp_path):
    """(A report of run folders that do not record their LR says so: tests/test_report.py.)"""
    from scaling.report.document import write_report

    table = _runs_with_configs(law_file, tmp_path)
    text = write_report(table, tmp_path / "report", bootstrap=0, dpi=150).markdown.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| hyperparameters (peak LR, batch)"))
    assert "8 runs: peak LR and batch from the fixed recipe" in row
    assert f"8 runs: peak LR and batch from the hyperparameter laws of {law_file}" in row
    assert f"{law_file}: lr_opt = 0.5 N^-0.300 D^0.050, B_opt = 10 N^0.000 D^0.400 tokens" in row


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
