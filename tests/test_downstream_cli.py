"""scaling downstream and scaling predict on its fit, end to end on a synthetic task ladder (a known task-loss
law and sigmoid, tests/helpers.task_ladder): column pairing, checkpoints, several tasks, JSON, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import ACC_COLUMN, BPB_COLUMN, TASK_LAW, assert_usage_error, task_accuracy, task_ladder

from scaling.fitting.laws import get_law
from scaling.runs.table import load_runs
from scaling.runs.tasks import task_columns
from scaling.study.downstream import chance_of, fit_tasks, load_downstream

BOOT = ["--bootstrap", "20"]  # intervals (the tests that read them)
FAST = ["--bootstrap", "0"]


@pytest.fixture
def ladder(tmp_path):
    path = tmp_path / "ladder.csv"
    task_ladder().to_csv(path, index=False)
    return path


def true_accuracy(N: float, D: float) -> float:
    return float(task_accuracy(get_law("chinchilla").predict(TASK_LAW, N=[N], D=[D]))[0])


def test_two_step_fit_json_and_predict(ladder, tmp_path, cli):
    fit_json, pred_json = tmp_path / "fit.json", tmp_path / "pred.json"
    done = cli("downstream", ladder, "--accuracy", ACC_COLUMN, *BOOT, "--json", fit_json)
    assert done.status == 0, done.err
    assert "hellaswag_rc_5shot" in done.out and "2 (via task loss)" in done.out
    doc = json.loads(fit_json.read_text())
    assert doc["format"] == "scaling.downstream/1"
    (task,) = doc["tasks"]
    assert task["columns"] == {"accuracy": ACC_COLUMN, "task_loss": BPB_COLUMN}  # paired by name
    assert task["fit"]["format"] == "scaling.task_fit/1" and task["fit"]["two_step"]
    assert task["fit"]["noise"] > 0  # the middle size's reruns
    assert task["largest"]["N"] == 7e8
    assert json.loads(json.dumps(load_downstream(fit_json).to_json())) == doc  # the JSON reads back whole

    # a model 4x the ladder's largest, at 20 tokens per parameter: accuracy and task loss with intervals
    N, D = 2.8e9, 5.6e10
    done = cli("predict", fit_json, "--params", "2.8B", "--tokens", "56B", "--json", pred_json)
    assert done.status == 0, done.err
    assert "hellaswag_rc_5shot: accuracy" in done.out and "run-to-run spread" in done.out
    pred = json.loads(pred_json.read_text())
    assert pred["format"] == "scaling.downstream_prediction/1" and pred["C"] == pytest.approx(6 * N * D)
    p = pred["tasks"]["hellaswag_rc_5shot"]
    lo, hi = p["accuracy_ci"]
    assert lo <= p["accuracy"] <= hi and isinstance(p["within_noise"], bool)
    assert p["accuracy"] == pytest.approx(true_accuracy(N, D), abs=0.02)
    true_loss = float(get_law("chinchilla").predict(TASK_LAW, N=[N], D=[D])[0])
    assert p["task_loss"] == pytest.approx(true_loss, rel=0.03) and len(p["task_loss_ci"]) == 2


def test_one_step_through_the_lm_loss(ladder, tmp_path, cli):
    out = tmp_path / "fit.json"
    done = cli("downstream", ladder, "--accuracy", ACC_COLUMN, "--no-task-loss", "--method", "bhagia2024",
               *FAST, "--json", out)
    assert done.status == 0, done.err
    (task,) = json.loads(out.read_text())["tasks"]
    assert task["columns"]["task_loss"] is None and not task["fit"]["two_step"]
    assert task["fit"]["method"] == "bhagia2024"
    done = cli("predict", out, "--params", "700M", "--tokens", "14B", "--json", tmp_path / "p.json")
    assert done.status == 0, done.err
    assert json.loads((tmp_path / "p.json").read_text())["tasks"]["hellaswag_rc_5shot"]["task_loss"] is None


def test_checkpoints_of_a_w_and_b_export_feed_the_sigmoid(tmp_path, cli):
    """A CSV with one row per evaluation (a run's rows share its name, `step` orders them): every row is
    a checkpoint of step 2, each run's last one its final point."""
    path, out = tmp_path / "evals.csv", tmp_path / "fit.json"
    table = task_ladder(checkpoints=3)
    table.to_csv(path, index=False)
    done = cli("downstream", path, "--accuracy", "eval/downstream/*", *FAST, "--json", out)
    assert done.status == 0, done.err
    fit = json.loads(out.read_text())["tasks"][0]["fit"]
    runs = table["run"].nunique()
    assert fit["n_runs"] == runs and fit["n_points"] > runs  # (the method may leave the earliest out)
    (task,) = fit_tasks(load_runs(path), accuracy=[ACC_COLUMN], bootstrap=0).tasks
    assert task.points.N.size == len(table) and task.points.final.sum() == runs
    last = table.sort_values("step").groupby("run").tail(1).set_index("run")
    final = task.points.final
    np.testing.assert_allclose(task.points.D[final], last.loc[task.points.run[final], "D"])


def test_loss_laws_fit_each_runs_final_row_of_a_checkpoint_table(tmp_path, cli):
    """The same W&B-style table given to `scaling fit`: the law fits the runs' final rows, not the earlier
    checkpoints of runs still training, and says how many rows it left out."""
    path, out = tmp_path / "evals.csv", tmp_path / "fit.json"
    table = task_ladder(checkpoints=3)
    table.to_csv(path, index=False)
    done = cli("fit", path, "--law", "chinchilla", "--json", out)
    assert done.status == 0, done.err
    runs = table["run"].nunique()
    assert f"{len(table) - runs} rows are earlier checkpoints of {runs} runs" in done.err
    assert json.loads(out.read_text())["n_points"] == runs


def test_several_tasks_by_glob_with_their_chance(tmp_path, cli):
    table = task_ladder()
    # a two-choice task (chance 0.5 by name) whose accuracy rises with the same task loss
    table["eval/downstream/piqa_rc_5shot_len_norm"] = 0.5 + 0.4 / (1 + np.exp(6 * (table[BPB_COLUMN] - 1.1)))
    table["eval/downstream_bpb/piqa_rc_5shot_bpb_bpb"] = table[BPB_COLUMN]
    path, out = tmp_path / "tasks.csv", tmp_path / "fit.json"
    table.to_csv(path, index=False)
    done = cli("downstream", path, "--accuracy", "eval/downstream/*", *FAST, "--json", out)
    assert done.status == 0, done.err
    assert "downstream accuracy of 2 task(s)" in done.out
    tasks = {t["task"]: t for t in json.loads(out.read_text())["tasks"]}
    assert set(tasks) == {"hellaswag_rc_5shot", "piqa_rc_5shot"}
    assert tasks["piqa_rc_5shot"]["fit"]["chance"] == 0.5
    assert tasks["hellaswag_rc_5shot"]["fit"]["chance"] == 0.25
    done = cli("predict", out, "--params", "1B", "--tokens", "20B", "--json", tmp_path / "p.json")
    assert set(json.loads((tmp_path / "p.json").read_text())["tasks"]) == set(tasks)


def test_a_task_that_cannot_be_fitted_is_left_out_of_several(tmp_path, cli):
    table = task_ladder()
    table["eval/downstream/arc_challenge_rc_5shot_len_norm"] = 0.25  # never leaves chance
    path, out = tmp_path / "tasks.csv", tmp_path / "fit.json"
    table.to_csv(path, index=False)
    done = cli("downstream", path, "--accuracy", "eval/downstream/*", *FAST, "--json", out)
    assert done.status == 0, done.err
    assert "warning: task arc_challenge_rc_5shot left out" in done.err and "not yet predictable" in done.err
    doc = json.loads(out.read_text())
    assert [t["task"] for t in doc["tasks"]] == ["hellaswag_rc_5shot"]
    assert "not yet predictable" in doc["skipped"]["arc_challenge_rc_5shot"]


def test_percent_accuracy_is_read_as_a_fraction(tmp_path, cli):
    table = task_ladder()
    table[ACC_COLUMN] *= 100
    path = tmp_path / "percent.csv"
    table.to_csv(path, index=False)
    done = cli("downstream", path, "--accuracy", ACC_COLUMN, *FAST, "--json", tmp_path / "fit.json")
    assert done.status == 0, done.err
    assert "read as percent" in done.err
    (task,) = json.loads((tmp_path / "fit.json").read_text())["tasks"]
    assert 0.7 < task["largest"]["accuracy"] < 0.9


@pytest.mark.parametrize(
    ("change", "argv", "fragments"),
    [
        (lambda t: t.assign(**{ACC_COLUMN: -t[ACC_COLUMN]}), [], ["accuracy must be a fraction in [0, 1]"]),
        (lambda t: t.assign(**{ACC_COLUMN: t[ACC_COLUMN] * 1000}), [], ["accuracy must be a fraction"]),
        (lambda t: t.head(3), [], ["give at least 4 runs"]),
        (lambda t: t.assign(**{ACC_COLUMN: 0.25 + np.random.default_rng(0).normal(0, 0.005, len(t))}), [],
         ["not yet predictable at these scales"]),
        (lambda t: t, ["--accuracy", "eval/downstream/hellaswag_rc_5shot_len_nrm"],
         ["no such column", f"did you mean {ACC_COLUMN!r}"]),
        (lambda t: t, ["--accuracy", "eval/mmlu/*"], ["'eval/mmlu/*' matches no column"]),
        (lambda t: t, ["--task-loss", "bpb"], ["--task-loss 'bpb': no such column"]),
        (lambda t: t, ["--chance", "1.5"], ["--chance '1.5' is not X or TASK=X"]),
        (lambda t: t, ["--method", "nope"], ["--method must be one of ladder, bhagia2024"]),
        (lambda t: t.rename(columns={ACC_COLUMN: "score"}), ["--accuracy", "score"],
         ["chance accuracy is unknown", "give --chance"]),
    ],
)
def test_bad_input_is_one_error_line_and_keeps_the_previous_json(tmp_path, cli, change, argv, fragments):
    path, out = tmp_path / "bad.csv", tmp_path / "fit.json"
    change(task_ladder()).to_csv(path, index=False)
    out.write_text("previous")
    accuracy = [] if "--accuracy" in argv else ["--accuracy", ACC_COLUMN]
    result = cli("downstream", path, *accuracy, *argv, *FAST, "--json", out)
    assert_usage_error(result, *fragments, warnings=True)
    assert out.read_text() == "previous"


def test_predict_needs_one_run(ladder, tmp_path, cli):
    out = tmp_path / "fit.json"
    assert cli("downstream", ladder, "--accuracy", ACC_COLUMN, *FAST, "--json", out).status == 0
    assert_usage_error(cli("predict", out, "--params", "1B"), "give --params N and --tokens D")
    assert_usage_error(cli("predict", out, "--params", "1B", "--optimal"), "give --params N and --tokens D")
    # --compute C gives D = C / 6N
    done = cli("predict", out, "--params", "1B", "--compute", "1.2e20", "--json", tmp_path / "p.json")
    assert done.status == 0, done.err
    assert json.loads((tmp_path / "p.json").read_text())["D"] == pytest.approx(2e10)


# ---- the naming rule ---------------------------------------------------------------------------------
OLMO = [
    "eval/downstream/hellaswag_rc_5shot_len_norm", "eval/downstream/arc_easy_rc_5shot_acc",
    "eval/downstream_bpb/hellaswag_rc_5shot_bpb_bpb", "eval/downstream_bpb/arc_easy_rc_5shot_bpb_bpb",
    "eval/c4_en-validation/CrossEntropyLoss",
]


def test_olmo_keys_pair_by_name():
    found = task_columns(OLMO, ["eval/downstream/*"])
    assert [(t.task, t.accuracy, t.task_loss) for t in found] == [
        ("hellaswag_rc_5shot", OLMO[0], OLMO[2]), ("arc_easy_rc_5shot", OLMO[1], OLMO[3]),
    ]
    # an accuracy glob leaves out the task losses it matches
    assert [t.accuracy for t in task_columns(OLMO, ["eval/downstream*"])] == OLMO[:2]


def test_lm_eval_keys_and_explicit_task_losses():
    columns = ["hellaswag/acc_norm", "hellaswag/acc", "hellaswag/bpb", "piqa/acc", "my_piqa_loss_col"]
    found = task_columns(columns, ["hellaswag/acc_norm"])
    assert (found[0].task, found[0].task_loss) == ("hellaswag", "hellaswag/bpb")
    # two accuracies of one task are named by their columns
    assert [t.task for t in task_columns(columns, ["hellaswag/*"])] == ["hellaswag/acc_norm", "hellaswag/acc"]
    # one accuracy with one task loss pair whatever their names
    found = task_columns(columns, ["piqa/acc"], ["my_piqa_loss_col"])
    assert found[0].task_loss == "my_piqa_loss_col"
    assert task_columns(columns, ["piqa/acc"])[0].task_loss is None  # none by name: one step
    assert task_columns(columns, ["hellaswag/acc"], pair=False)[0].task_loss is None


def test_chance_by_benchmark_name():
    assert chance_of("mmlu_stem_val_rc_5shot", None) == 0.25
    assert chance_of("socialiqa_rc_5shot", None) == pytest.approx(1 / 3)
    assert chance_of("csqa_rc_5shot", None) == 0.2
    assert chance_of("anything", 0.1) == 0.1 and chance_of("piqa", {"piqa": 0.4}) == 0.4


def test_run_folder_checkpoints_from_metrics(tmp_path, cli):
    """Run folders: a task logged at each evaluation of metrics.jsonl gives the run's earlier checkpoints;
    the final ones are the last evaluation's, as a tracker run's last logged value is."""
    from scaling.runs.tasks import logged_columns, run_curves, task_checkpoints

    table = task_ladder(checkpoints=3)
    for run, rows in table.groupby("run"):
        folder = tmp_path / "sweep" / run
        folder.mkdir(parents=True)
        last = rows.iloc[-1]
        (folder / "summary.json").write_text(json.dumps(
            {"status": "completed", "n_params": last["N"], "tokens": last["D"], "val_loss": last["loss"]}))
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"step": int(r["step"]), "tokens": r["D"], "val_loss": r["loss"],
                        ACC_COLUMN: r[ACC_COLUMN], BPB_COLUMN: r[BPB_COLUMN]}) + "\n"
            for _, r in rows.iterrows()))
    runs = load_runs(tmp_path / "sweep")
    curves = run_curves(runs)
    points = task_checkpoints(runs, task_columns(logged_columns(runs, curves), [ACC_COLUMN]), curves)
    assert len(points) == len(table) and points["final"].sum() == table["run"].nunique()
    earlier = points[~points["final"]].sort_values(["run", "D"]).reset_index(drop=True)
    expected = table[table["step"] < 300].sort_values(["run", "D"]).reset_index(drop=True)
    np.testing.assert_allclose(earlier[ACC_COLUMN], expected[ACC_COLUMN])
    final = points[points["final"]].sort_values("run")
    np.testing.assert_allclose(final[BPB_COLUMN], table[table["step"] == 300].sort_values("run")[BPB_COLUMN])
    done = cli("downstream", tmp_path / "sweep", "--accuracy", ACC_COLUMN, *FAST)
    assert done.status == 0, done.err
    assert "2 (via task loss)" in done.out


def test_wandb_export_histories_give_the_checkpoints(tmp_path, cli):
    """A W&B export (runs.csv from the UI, each run's history beside it): the tasks' final values from the
    runs table, their earlier checkpoints from the histories, at the steps the loss was logged."""
    table = task_ladder(checkpoints=3)
    export = tmp_path / "export"
    (export / "history").mkdir(parents=True)
    rows = []
    for run, evals in table.groupby("run", sort=False):
        last = evals.iloc[-1]
        rows.append({"Name": run, "State": "finished", "params": last["N"], "tokens": last["D"],
                     "eval/loss": last["loss"], ACC_COLUMN: last[ACC_COLUMN], BPB_COLUMN: last[BPB_COLUMN]})
        history = evals.rename(columns={"step": "_step", "loss": "eval/loss", "D": "tokens"})
        history[["_step", "tokens", "eval/loss", ACC_COLUMN, BPB_COLUMN]].to_csv(
            export / "history" / f"{run}.csv", index=False)
    pd.DataFrame(rows).to_csv(export / "runs.csv", index=False)
    out = tmp_path / "fit.json"
    done = cli("downstream", export, "--map", "N=params,D=tokens,loss=eval/loss", "--accuracy", ACC_COLUMN,
               *FAST, "--json", out)
    assert done.status == 0, done.err
    fit = json.loads(out.read_text())["tasks"][0]
    assert fit["columns"]["task_loss"] == BPB_COLUMN
    assert fit["fit"]["n_runs"] == len(rows) and fit["fit"]["n_points"] > len(rows)
