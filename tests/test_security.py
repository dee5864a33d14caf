"""Security: files a user is handed (checkpoints, run folders, configs) cannot run code or write elsewhere.

- every `torch.load` reads weights only; YAML is read with safe loaders; no eval/exec, no pickle of data
  (checked on the syntax tree of every module);
- a checkpoint holding a pickled object that would run a command is refused, and the command never runs;
- a run folder's config.yaml holding a YAML Python tag is never executed (reading runs, resuming a run);
- a sweep's config cannot place a run outside the sweep folder (`..` in values, in the run subfolder, in
  the sweep's name).
"""

from __future__ import annotations

import ast
import json
import os
import threading
from pathlib import Path

import pytest
import torch
from helpers import BIN, REPO, CliResult, assert_usage_error, run_process

from scaling.errors import UsageError
from scaling.runs.table import collect_runs
from scaling.training.config import compose_run_config
from scaling.training.trainer import train

PACKAGES = ("scaling", "hydra_plugins", "bench", "analysis")
PICKLERS = ("pickle", "cPickle", "dill", "marshal", "shelve")
SOURCES = sorted(p for d in PACKAGES for p in (REPO / d).rglob("*.py"))
RUN = ["model=tiny_10k", "train.tokens=20k", "train.batch_size=4", "train.evals=2", "train.eval_tokens=1024",
       "train.threads=1"]  # fmt: skip


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            yield node, owner, name


def test_sources_load_weights_only_safe_yaml_and_no_eval_or_pickle():
    problems = []
    torch_loads = 0
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in PICKLERS for n in names):
                    problems.append(f"{where}:{node.lineno} imports a pickle module")
        for node, owner, name in calls(tree):
            keywords = {k.arg: k.value for k in node.keywords}
            if owner == "torch" and name == "load":
                torch_loads += 1
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}:{node.lineno} torch.load without weights_only=True")
            if owner == "" and name in ("eval", "exec"):
                problems.append(f"{where}:{node.lineno} {name}()")
            if owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load", "full_load_all"):
                problems.append(f"{where}:{node.lineno} yaml.{name} (use yaml.safe_load)")
            numpy_pickle = name == "load" and owner in ("np", "numpy") and "allow_pickle" in keywords
            if name == "read_pickle" or numpy_pickle:
                problems.append(f"{where}:{node.lineno} {owner}.{name} of pickled data")
    assert not problems, problems
    assert torch_loads >= 1  # the checkpoint loader is found, so the walk does look at it


def config(*overrides):
    return compose_run_config([*RUN, *overrides])


class StopAfter(threading.Event):
    def __init__(self, calls: int):
        super().__init__()
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls < 0


class RunsACommand:
    """Unpickling this runs `touch MARKER`: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def interrupted(tmp_path):
    """A real run folder stopped at a step boundary: config.yaml, summary (interrupted), ckpt.pt."""
    run_dir = tmp_path / "run"
    assert train(config(), run_dir, stop=StopAfter(3))["status"] == "interrupted"
    assert (run_dir / "ckpt.pt").exists()
    return run_dir


def test_checkpoint_with_a_pickled_command_is_refused(interrupted, tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"model": RunsACommand(marker), "step": 3}, interrupted / "ckpt.pt")
    summary = (interrupted / "summary.json").read_bytes()
    with pytest.raises(UsageError, match="is not a readable weights-only checkpoint"):
        train(config(), interrupted)
    assert not marker.exists(), "unpickling the checkpoint ran a command"
    assert (interrupted / "summary.json").read_bytes() == summary  # the folder is left as it was
    # and through the command line: one error line, no traceback
    done = run_process([BIN / "scaling-train", *RUN, f"hydra.run.dir={interrupted}"], cwd=tmp_path)
    assert assert_usage_error(done).startswith("error: checkpoint ") and not marker.exists()


def test_yaml_python_tags_in_a_run_folder_are_not_executed(interrupted, tmp_path):
    marker = tmp_path / "PWNED"
    (interrupted / "config.yaml").write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    table = collect_runs(interrupted.parent)  # reading the sweep folder
    assert table["status"].tolist() == ["interrupted"]
    with pytest.raises(UsageError, match="has a damaged config.yaml"):  # resuming the run
        train(config(), interrupted)
    assert not marker.exists()


@pytest.mark.slow
def test_sweep_runs_stay_inside_the_sweep_folder(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    sweep_dir = cwd / "sweep"
    base = [str(BIN / "scaling-train"), "-m", *RUN, "train.evals=1", f"hydra.sweep.dir={sweep_dir}"]
    escapes = {
        "subdir climbing out": ["hydra.sweep.subdir=../../escaped"],
        "absolute subdir": [f"hydra.sweep.subdir={tmp_path / 'escaped'}"],
        "sweep name climbing out": ["+sweep.name=../../escaped"],
    }
    def sweep(*args: str) -> CliResult:
        return run_process([*base, *args], cwd=cwd)

    for case, overrides in escapes.items():
        if case.startswith("sweep name"):  # the default sweep folder, runs/<sweep.name>
            overrides = ["hydra.sweep.dir=runs/${oc.select:sweep.name,multirun}", *overrides]
        line = assert_usage_error(sweep(*overrides), "nothing launched")
        assert "not inside the sweep folder" in line or "sweep.name must be a plain folder" in line, case
    # `..` and `/` in a value become part of one folder name inside the sweep folder
    done = sweep("+sweep.tag=../../../escaped")  # a free key of the sweep node
    assert done.status == 0, done.err[-2000:]
    (summary,) = sweep_dir.glob("*/summary.json")
    assert summary.parent.parent == sweep_dir and "+sweep.tag=..%2F..%2F..%2Fescaped" in summary.parent.name
    assert json.loads(summary.read_text())["status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing escaped
    assert sorted(p.name for p in cwd.iterdir()) == ["sweep"]
