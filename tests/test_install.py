"""Install anywhere: the wheel of this tree, installed into a fresh virtual environment outside the clone,
has the configs and the published data, trains a run, and plans a user's own sweep file (`--config-dir`),
all from a folder of the user's that is not the clone.

The new environment takes its dependencies (torch, Hydra, ...) from the test environment's site-packages,
added as a plain path: no network, and the editable install of the clone (a .pth hook there) is not loaded,
so what runs is the wheel's copy. The test checks that too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import REPO, assert_usage_error, run_process

from scaling.resources import config_dir, data_dir

pytestmark = pytest.mark.slow

# What `make setup` leaves in a clone and a wheel must not be built from (build/ keeps stale files).
NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".slurm")
OUTPUTS = ("runs", "outputs", "multirun", "reports")  # at the top of the clone only: scaling/runs is source
RUN = ["model=tiny_10k", "train.tokens=20k", "train.batch_size=4", "train.evals=1", "train.eval_tokens=1024",
       "train.threads=1"]  # fmt: skip
MY_SWEEP = """\
# @package _global_
sweep:
  name: mine
hydra:
  sweeper:
    params:
      model: tiny_10k,my_model
      train.tokens: 20k,40k
"""
MY_MODEL = "n_layer: 1\nd_model: 32\nn_head: 2\nn_ctx: 64\nvocab_size: null\n"


def _not_source(folder: str, names: list[str]) -> set[str]:
    ignored = shutil.ignore_patterns(*NOT_SOURCE)(folder, names)
    return ignored | (set(OUTPUTS) & set(names)) if Path(folder) == REPO else ignored


@pytest.fixture(scope="module")
def installed(tmp_path_factory, scaling_cache) -> tuple[Path, dict]:
    """(the bin folder of a fresh venv holding only the wheel of this tree, the environment to run it in)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a clean copy: building in the clone would reuse whatever its build/ holds
    shutil.copytree(REPO, source, ignore=_not_source)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheel = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root / "dist", source],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The dependencies: the test venv's site-packages as a path, after the new venv's own (a path line in a
    # .pth file does not run the .pth files of the folder it names, so the clone's editable hook stays off).
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site, "test-dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    (wheel_file,) = (root / "dist").glob("scaling-*.whl")
    install = subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", wheel_file],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SCALING_CACHE"] = str(scaling_cache)
    return venv / "bin", env


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's own project folder, outside the clone, with a sweep file and a model preset of theirs."""
    (tmp_path / "mysweeps" / "sweep").mkdir(parents=True)
    (tmp_path / "mysweeps" / "model").mkdir()
    (tmp_path / "mysweeps" / "sweep" / "mine.yaml").write_text(MY_SWEEP)
    (tmp_path / "mysweeps" / "model" / "my_model.yaml").write_text(MY_MODEL)
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def test_wheel_ships_the_configs_and_every_published_data_file(installed, project):
    bin_dir, env = installed
    script = (
        "import scaling.resources as r; print(r.__file__, r.config_dir(), r.data_dir(), "
        "r.data_file('chinchilla_epoch_fig4.csv'), sep='\\n')"
    )
    where = run_process([bin_dir / "python", "-c", script], cwd=project, env=env)
    assert where.status == 0, where.err
    module, configs, data, chinchilla = (Path(line) for line in where.out.splitlines())
    venv = bin_dir.parent.resolve()
    for path in (module, configs, data, chinchilla):
        assert path.is_relative_to(venv), f"{path} is not the wheel's copy"  # the clone does not shadow it
    assert chinchilla.read_bytes() == (data_dir() / "chinchilla_epoch_fig4.csv").read_bytes()

    def files(folder: Path, pattern: str) -> set[str]:
        return {str(p.relative_to(folder)) for p in folder.glob(pattern)}

    assert files(configs, "**/*.yaml") == files(config_dir(), "**/*.yaml")
    assert files(data, "**/*.csv") == files(data_dir(), "**/*.csv") != set()


def test_wheel_trains_a_run_and_plans_a_users_own_sweep_outside_the_clone(installed, project):
    bin_dir, env = installed
    train = run_process([bin_dir / "scaling-train", *RUN], cwd=project, env=env)
    assert train.status == 0, train.err[-3000:]
    assert train.out.startswith("completed: val_loss"), train.out
    (summary,) = project.glob("runs/train/*/summary.json")
    assert '"status": "completed"' in summary.read_text()

    plan = run_process(
        [bin_dir / "scaling-train", "--config-dir", "mysweeps", "-m", "+sweep=mine", "train.batch_size=4",
         "hydra.sweeper.dry_run=true"], cwd=project, env=env,
    )  # fmt: skip
    assert plan.status == 0, plan.err[-3000:]
    assert "sweep runs/mine: 4 runs" in plan.out, plan.out
    assert "model=my_model,train.batch_size=4,train.tokens=40k" in plan.out, plan.out  # user's preset
    assert not (project / "runs" / "mine").exists()  # a dry run writes nothing


def test_wheel_writes_the_demos_chinchilla_report_outside_the_clone(installed, project):
    """`make demo`'s second report runs from the package alone: the wheel's data file, no analysis/ script."""
    bin_dir, env = installed
    script = (
        "from scaling.cli.demo import chinchilla_report; "
        "raise SystemExit(chinchilla_report('report', bootstrap=20))"
    )
    written = run_process([bin_dir / "python", "-c", script], cwd=project, env=env)
    assert written.status == 0, written.err[-3000:]
    text = (project / "report" / "report.md").read_text()
    assert text.startswith("# Scaling report: Chinchilla (Hoffmann et al. 2022")
    assert f"from `{bin_dir.parent.resolve()}" in text and "_shipped/data/chinchilla_epoch_fig4.csv`" in text


def test_a_missing_config_dir_is_one_error_line(installed, project):
    bin_dir, env = installed
    result = run_process([bin_dir / "scaling-train", "--config-dir", "nowhere", "-m", "+sweep=mine"],
                         cwd=project, env=env)  # fmt: skip
    assert_usage_error(result, "nowhere")
