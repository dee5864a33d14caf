"""LR schedules, cooldown branches and curve tables: the shape of every schedule, a branch that resumes
its parent's weights and decays (bitwise the wsd run it stands for), the refusals, flops_own, and the
curve table of a tiny cooldowns sweep and of a tracker."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import BIN, assert_usage_error, run_process

from scaling.errors import UsageError
from scaling.io import read_jsonl
from scaling.runs.curve_sources import collect_curves
from scaling.training.branch import branch_checkpoint
from scaling.training.config import compose_run_config, plan_run
from scaling.training.schedule import KNOT_TOLERANCE, Schedule
from scaling.training.trainer import train

pytestmark = pytest.mark.usefixtures("scaling_cache")

# A tiny run on the synthetic source: 62 steps of 1,024 tokens in a few seconds on one thread. Warmup of
# one step in every run, so that a parent and a branch of other lengths share it.
TINY = ["model=tiny_10k", "data=synthetic", "train.batch_size=8", "train.evals=4", "train.eval_tokens=2048",
        "train.threads=1", "train.warmup_frac=0", "train.lr=3e-3"]  # fmt: skip


def config(*overrides):
    return compose_run_config(overrides)


def metrics(run_dir):
    return list(read_jsonl(Path(run_dir) / "metrics.jsonl"))


# ---- schedule shapes --------------------------------------------------------------------------------
def old_cosine(step, lr, steps, warmup, floor_ratio):
    """The trainer's LR before schedules existed, verbatim: cosine must stay bitwise this."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = floor_ratio * lr
    return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("steps,warmup", [(2, 1), (100, 2), (977, 20)])
def test_cosine_is_bitwise_the_old_schedule(steps, warmup):
    schedule = Schedule("cosine", 6e-4, steps, warmup, 0.1, steps)
    assert [schedule.lr_at(s) for s in range(steps)] == [old_cosine(s, 6e-4, steps, warmup, 0.1)
                                                          for s in range(steps)]  # fmt: skip
    default = plan_run(config(*TINY, "train.tokens=64k"))
    assert default.schedule.schedule == "cosine"


def test_each_schedule_warms_up_decays_and_ends_where_it_should():
    steps, warmup, peak = 1000, 50, 1e-3
    shapes = {kind: Schedule(kind, peak, steps, warmup, 0.1, 800 if kind == "wsd" else steps).lrs()
              for kind in ("cosine", "linear", "constant", "wsd")}  # fmt: skip
    for kind, lrs in shapes.items():
        assert lrs[0] == pytest.approx(peak / warmup) and lrs[warmup - 1] == pytest.approx(peak), kind
        assert np.all(np.diff(lrs[:warmup]) > 0), kind
        assert np.all(np.diff(lrs[warmup:]) <= 1e-18), kind  # never rises after warmup
    assert shapes["constant"][-1] == peak and np.all(shapes["constant"][warmup:] == peak)
    for kind in ("cosine", "linear", "wsd"):
        assert shapes[kind][-1] == pytest.approx(1e-4), kind  # the floor at exactly the last step
    middle = warmup + (steps - 1 - warmup) // 2
    assert shapes["linear"][middle] == pytest.approx(1e-4 + 0.5 * 9e-4, rel=1e-2)
    assert np.all(shapes["wsd"][warmup:800] == peak) and shapes["wsd"][800] < peak  # stable, then decay


@pytest.mark.parametrize("shape,at_half", [("linear", 0.5), ("cosine", 0.5), ("sqrt", 1 - math.sqrt(0.5))])
def test_wsd_decays_over_its_fraction_with_its_shape(shape, at_half):
    plan = plan_run(config(*TINY, "train.tokens=200k", "train.schedule=wsd", "train.decay_frac=0.25",
                           f"train.decay_shape={shape}"))  # fmt: skip
    s = plan.schedule
    decaying = s.steps - s.decay_start
    assert decaying == round(0.25 * plan.steps) and s.decay_frac == pytest.approx(0.25, abs=1 / plan.steps)
    lrs = s.lrs()
    assert np.all(lrs[plan.warmup_steps : s.decay_start] == plan.lr) and lrs[s.decay_start] < plan.lr
    half = s.decay_start + decaying // 2 - 1  # progress (k + 1) / decaying = 1/2 at k = decaying/2 - 1
    floor = 0.1 * plan.lr
    assert (lrs[half] - floor) / (plan.lr - floor) == pytest.approx(at_half, abs=0.02)
    assert lrs[-1] == pytest.approx(floor)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant", "wsd"])
def test_knots_are_the_lr_of_every_step_in_compact_form(kind):
    steps = 20_000
    schedule = Schedule(kind, 1e-3, steps, 400, 0.1, 16_000 if kind == "wsd" else steps, "sqrt")
    knots = np.array(schedule.knots())
    assert knots[0, 0] == 1 and knots[-1, 0] == steps and len(knots) < 2_000
    lrs, every = schedule.lrs(), np.arange(1, steps + 1)
    assert np.max(np.abs(np.interp(every, knots[:, 0], knots[:, 1]) - lrs)) <= KNOT_TOLERANCE * 1e-3
    np.testing.assert_allclose(knots[:, 2], np.cumsum(lrs)[knots[:, 0].astype(int) - 1], rtol=1e-12)
    assert Schedule.from_json(json.loads(json.dumps(schedule.to_json()))) == schedule


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.schedule=step"], "train.schedule must be one of cosine, wsd, constant, linear"),
        (["train.schedule=wsd", "train.decay_shape=exp"], "train.decay_shape must be one of"),
        (["train.schedule=wsd", "train.decay_frac=1.5"], "train.decay_frac must be a number in [0, 1]"),
        (["train.schedule=wsd", "train.decay_frac=0"], "use train.schedule=constant"),
        (["train.schedule=wsd", "train.decay_frac=1", "train.warmup_frac=0.1"], "inside the 6 warmup steps"),
        (["train.branch_tokens=10k"], "train.branch_tokens needs train.branch_from"),
        (["train.branch_from=/x"], "set train.schedule=wsd, not cosine"),
        (["train.schedule=wsd", "train.branch_from=/x", "train.branch_tokens=90k"], "before train.tokens"),
        (["train.save_at=[100k]"], "train.save_at=100k is step 98 of 62"),
    ],
)
def test_bad_schedule_keys_are_refused_before_training(overrides, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        plan_run(config(*TINY, "train.tokens=64k", *overrides))


# ---- cooldown branches ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A constant-LR parent of 62 steps keeping checkpoints at steps 31 and 47, a cooldown branch from
    step 31 to step 47, and the wsd run of 47 steps whose decay starts at step 32 that the branch is."""
    root = tmp_path_factory.mktemp("family")
    parent = train(config(*TINY, "train.tokens=64k", "train.schedule=constant", "train.save_at=[32k,48k]"),
                   root / "parent")  # fmt: skip
    branch_cfg = [*TINY, "train.tokens=48k", "train.schedule=wsd", f"train.branch_from={root / 'parent'}",
                  "train.branch_tokens=32k"]  # fmt: skip
    branch = train(config(*branch_cfg), root / "branch")
    direct = train(config(*TINY, "train.tokens=48k", "train.schedule=wsd", f"train.decay_frac={16 / 47}"),
                   root / "direct")  # fmt: skip
    return root, parent, branch, direct, branch_cfg


def test_a_branch_resumes_its_parents_weights_and_decays(family):
    root, parent, branch, direct, _ = family
    assert parent["status"] == branch["status"] == direct["status"] == "completed"
    assert sorted(p.name for p in (root / "parent" / "branches").iterdir()) == ["step_31.pt", "step_47.pt"]
    assert branch_checkpoint(root / "parent", 31).is_file()
    # the branch trains only steps 32..47, and ends exactly where the wsd run of its length ends
    assert branch["steps"] == direct["steps"] == 47 and branch["branch_step"] == 31
    rows = metrics(root / "branch")
    assert [r["step"] for r in rows] == [35, 39, 43, 47]  # its own evaluations, after the branch point
    held_out = {r["step"]: r["val_loss"] for r in metrics(root / "direct")}
    assert [held_out[35], held_out[47]] == [rows[0]["val_loss"], rows[-1]["val_loss"]]  # bitwise
    assert rows[-1]["lr"] == pytest.approx(3e-4) and rows[0]["lr"] < 3e-3
    # the run folder records its parent; compute counts the shared prefix once
    assert branch["parent"] == str((root / "parent").resolve()) and branch["branch_tokens"] == 31 * 1024
    assert branch["flops"] == 6 * branch["n_params"] * branch["tokens"]
    assert branch["flops_own"] == 6 * branch["n_params"] * 16 * 1024
    assert parent["flops_own"] == parent["flops"] and direct["flops_own"] == direct["flops"]
    assert (branch["schedule"], parent["schedule"]) == ("wsd", "constant")


def test_metrics_carry_the_lr_area_and_the_folder_the_schedule(family):
    root, *_ = family
    for name in ("parent", "branch", "direct"):
        saved = json.loads((root / name / "schedule.json").read_text())
        schedule = Schedule.from_json(saved)
        sums = schedule.lr_sums()
        for row in metrics(root / name):
            assert row["lr"] == schedule.lr_at(row["step"] - 1)
            assert row["lr_sum"] == pytest.approx(sums[row["step"] - 1], rel=1e-12)
        assert saved["tokens_per_step"] == 1024 and saved["format"] == "scaling.schedule/1"
    branch = Schedule.from_json(json.loads((root / "branch" / "schedule.json").read_text()))
    assert branch.lrs()[:31].tolist() == [3e-3] * 31  # the parent's prefix is part of the branch's record


def test_a_finished_branch_relaunches_as_a_no_op(family):
    root, _, branch, _, branch_cfg = family
    before = (root / "branch" / "summary.json").read_text()
    assert train(config(*branch_cfg), root / "branch") == branch
    assert (root / "branch" / "summary.json").read_text() == before


def test_an_interrupted_branch_resumes_from_its_own_checkpoint(family, tmp_path):
    root, _, branch, _, branch_cfg = family
    stop = threading.Event()
    stop.set()  # checkpoints at its first step boundary, step 32, then ends
    first = train(config(*branch_cfg), tmp_path / "branch", stop=stop)
    assert (first["status"], first["steps_done"]) == ("interrupted", 32)
    resumed = train(config(*branch_cfg), tmp_path / "branch")
    assert resumed["status"] == "completed" and resumed["resumes"] == 1
    assert resumed["val_loss"] == branch["val_loss"]  # bitwise the uninterrupted branch
    assert [r["step"] for r in metrics(tmp_path / "branch")] == [35, 39, 43, 47]


def test_a_branch_is_refused_before_training(family, tmp_path):
    root, *_ = family
    branch = [*TINY, "train.tokens=48k", "train.schedule=wsd"]
    stopped = threading.Event()
    stopped.set()  # the unfinished parent: interrupted at its first step boundary
    unfinished = train(config(*TINY, "train.tokens=64k", "train.schedule=constant", "train.save_at=[32k]"),
                       tmp_path / "unfinished", stop=stopped)  # fmt: skip
    assert unfinished["status"] == "interrupted"
    cosine = train(config(*TINY, "train.tokens=40k"), tmp_path / "cosine")
    assert cosine["status"] == "completed"
    cases = [
        ([f"train.branch_from={tmp_path / 'nowhere'}"], "no such run folder"),
        ([f"train.branch_from={tmp_path / 'unfinished'}", "train.branch_tokens=32k"],
         "the parent run is interrupted, not completed"),
        ([f"train.branch_from={root / 'parent'}", "train.branch_tokens=32k", "model=tiny_30k"],
         "another shape or setup (model.d_model: 20 -> 36; model.preset: tiny_10k -> tiny_30k)"),
        ([f"train.branch_from={root / 'parent'}", "train.branch_tokens=32k", "train.seed=1"],
         "train.seed: 0 -> 1"),
        ([f"train.branch_from={root / 'parent'}", "train.branch_tokens=20k"],
         "kept no checkpoint at step 20 (20480 tokens; kept: step_31.pt, step_47.pt)"),
        ([f"train.branch_from={tmp_path / 'cosine'}", "train.branch_tokens=20k"],
         "does not hold its peak LR up to the branch point"),
    ]  # fmt: skip
    for k, (overrides, message) in enumerate(cases):
        run_dir = tmp_path / f"branch{k}"
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            train(config(*branch, *overrides), run_dir)
        assert not run_dir.exists()  # refused before anything was written
    # the command line: one `error:` line, exit status 2
    result = run_process([BIN / "scaling-train", *branch, f"train.branch_from={tmp_path / 'nowhere'}",
                          f"hydra.run.dir={tmp_path / 'cli'}"], cwd=tmp_path)  # fmt: skip
    assert_usage_error(result, "no such run folder; train the parent run first")


# ---- the cooldowns sweep and its curve table -------------------------------------------------------
SWEEP = ["-m", "+sweep=cooldowns", "model.target_params=1e4", "sweep.ends=[4,8]", "sweep.point=8,parent,4",
         "train.evals=3", "train.eval_tokens=1024", "train.threads=1"]  # fmt: skip


@pytest.fixture(scope="module")
def cooldowns(tmp_path_factory):
    root = tmp_path_factory.mktemp("cooldowns")
    result = run_process([BIN / "scaling-train", *SWEEP], cwd=root)
    assert result.status == 0, result.err[-2000:]
    return root, result


def test_the_cooldowns_sweep_trains_parents_first_then_branches(cooldowns):
    root, result = cooldowns
    assert "3 completed" in result.out
    # listed first, branch 8 waits for its parent: one wave of the parent, then one of both branches
    waves = [line.split("Launching ")[1] for line in result.out.splitlines() if "Launching " in line]
    assert waves == ["1 jobs locally", "2 jobs locally"]
    sweep = root / "runs" / "cooldowns"
    summaries = {p.parent.name.split("sweep.point=")[1].split(",")[0]: json.loads(p.read_text())
                 for p in sweep.glob("*/summary.json")}  # fmt: skip
    assert set(summaries) == {"parent", "4", "8"}
    parent_dir = next(sweep.glob("*sweep.point=parent*")).resolve()
    n = summaries["parent"]["n_params"]
    for point in ("4", "8"):
        s = summaries[point]
        assert s["parent"] == str(parent_dir) and s["schedule"] == "wsd"
        assert s["tokens"] == pytest.approx(int(point) * n, rel=0.01)
        assert s["branch_tokens"] == pytest.approx(0.8 * int(point) * n, rel=0.01)
    assert summaries["parent"]["schedule"] == "constant"
    # the parent ends at the last branch point
    assert summaries["parent"]["tokens"] == summaries["8"]["branch_tokens"]
    # a relaunch trains nothing
    again = run_process([BIN / "scaling-train", *SWEEP], cwd=root)
    assert again.status == 0 and "all 3 runs already finished; nothing to train" in again.out


def test_runs_counts_a_shared_prefix_once(cooldowns, cli):
    root, _ = cooldowns
    result = cli("runs", root / "runs" / "cooldowns", "--csv", root / "runs.csv")
    table = pd.read_csv(root / "runs.csv")
    assert (table["C_own"] <= table["C"]).all() and (table["C_own"] < table["C"]).sum() == 2
    assert f"compute: {table['C_own'].sum():.3g} FLOPs trained" in result.out


def test_final_point_fits_leave_the_unannealed_parent_out(cooldowns):
    root, _ = cooldowns
    from scaling.runs.table import load_runs

    with pytest.warns(UserWarning, match=r"excluded 1 run\(s\) trained at a constant LR.*point=parent"):
        table = load_runs(root / "runs" / "cooldowns")
    assert len(table) == 2 and set(table["schedule"]) == {"wsd"}


def test_fit_curves_reads_the_sweep_folder(cooldowns, cli):
    root, _ = cooldowns
    result = cli("fit", root / "runs" / "cooldowns", "--curves", "--json", root / "curve_fit.json")
    assert result.status == 0, result.err
    assert "law mpl (learning curves): 3 curves" in result.out
    assert json.loads((root / "curve_fit.json").read_text())["format"] == "scaling.curve_fit/1"


def test_curve_table_from_the_sweep(cooldowns, cli):
    root, _ = cooldowns
    out = root / "curves.csv"
    result = cli("runs", root / "runs" / "cooldowns", "--curves", "--csv", out)
    assert result.status == 0 and "3 runs" in result.out
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == ["run", "N", "step", "tokens", "lr", "loss"]
    assert {"lr_sum", "D", "status", "parent"} <= set(table.columns)
    assert table.equals(collect_curves(root / "runs" / "cooldowns").astype(table.dtypes.to_dict()))
    for run, rows in table.groupby("run"):
        assert rows["step"].is_monotonic_increasing and rows["step"].is_unique
        assert rows["step"].iloc[0] == 1  # every run's LR from its first step, a branch's parent prefix too
        folder = Path(run)
        evals = metrics(folder)
        assert rows["loss"].notna().sum() == len(evals) == 3
        with_loss = rows.dropna(subset=["loss"])
        assert with_loss["step"].tolist() == [r["step"] for r in evals]
        assert with_loss["loss"].tolist() == pytest.approx([r["val_loss"] for r in evals])
        assert (rows["tokens"] == rows["step"] * 512).all()
        # linear interpolation of the rows gives the LR of every step
        schedule = Schedule.from_json(json.loads((folder / "schedule.json").read_text()))
        every = np.arange(1, rows["step"].max() + 1)
        exact = schedule.lrs()[: len(every)]
        interpolated = np.interp(every, rows["step"], rows["lr"])
        assert np.max(np.abs(interpolated - exact)) <= KNOT_TOLERANCE * exact.max()


def test_curve_table_from_a_tracker(tmp_path, cli):
    """A TensorBoard run of another trainer: loss every 10 steps, the LR at every step."""
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "tb" / "run1"
    writer = SummaryWriter(log_dir=str(folder))
    lr = [1e-3 * min(1, (s + 1) / 5) * (1 - s / 100) for s in range(100)]
    for step in range(1, 101):
        writer.add_scalar("lr", lr[step - 1], step)
        if step % 10 == 0:
            writer.add_scalar("eval/loss", 3 + 10 / step, step)
            writer.add_scalar("tokens", step * 4096, step)
    writer.close()
    (folder / "hparams.yaml").write_text("n_params: 100000\ntokens: 409600\n")
    out = tmp_path / "curves.csv"
    result = cli("runs", tmp_path / "tb", "--curves", "--map", "loss=eval/loss", "--csv", out)
    assert result.status == 0, result.err
    table = pd.read_csv(out)
    assert len(table) == 100 and table["loss"].notna().sum() == 10
    assert table["step"].tolist() == list(range(1, 101)) and (table["N"] == 1e5).all()
    assert table["lr"].to_numpy() == pytest.approx(np.array(lr, dtype=np.float32))
    assert (table["tokens"] == table["step"] * 4096).all()
    # without a logged LR: a warning names the run, the lr column is empty
    bare = tmp_path / "bare" / "run2"
    writer = SummaryWriter(log_dir=str(bare))
    for step in (10, 20):
        writer.add_scalar("eval/loss", 3 + 10 / step, step)
    writer.close()
    (bare / "hparams.yaml").write_text("n_params: 100000\ntokens: 81920\n")
    with pytest.warns(UserWarning, match="1 run\\(s\\) logged no learning rate.*run2"):
        curves = collect_curves(tmp_path / "bare", {"loss": "eval/loss"})
    assert curves["lr"].isna().all() and len(curves) == 2
