"""The report's downstream section: when the runs carry task columns, a table and one figure per task (the
sigmoid against the task loss, the prediction against compute); none when they carry no task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import ACC_COLUMN, BPB_COLUMN, assert_usage_error, law_table, task_ladder
from matplotlib.image import imread

from scaling.report.document import write_report
from scaling.runs.table import load_runs
from scaling.study.downstream import fit_tasks

PIQA = "eval/downstream/piqa_rc_5shot_len_norm"


def ladder_with_two_tasks():
    table = task_ladder(checkpoints=2)
    table[PIQA] = 0.5 + 0.4 / (1 + np.exp(6 * (table[BPB_COLUMN] - 1.1)))  # no task loss: one step
    return table


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("downstream")
    ladder_with_two_tasks().to_csv(folder / "ladder.csv", index=False)
    return write_report(folder / "ladder.csv", folder / "report", bootstrap=20, dpi=150)


def test_a_table_row_and_a_figure_per_task(report):
    text = report.markdown.read_text()
    assert "## Downstream tasks" in text
    source = load_runs(report.out_dir.parent / "ladder.csv")  # every checkpoint: what the tasks read
    expected = fit_tasks(source, accuracy=[ACC_COLUMN, PIQA], bootstrap=0)
    # the loss laws (and the run table the report writes) use each run's final row
    assert len(pd.read_csv(report.out_dir / "runs.csv")) == source["run"].nunique()
    for i, task in enumerate(expected.tasks):
        row = next(line for line in text.splitlines() if line.startswith(f"| {task.task} |"))
        at = task.at_largest()
        assert f"{at.accuracy:.4f} / {task.largest_accuracy:.4f}" in row
        assert f"| {task.fit.n_runs} | {task.fit.n_points} |" in row
        name = f"downstream_{i + 1}"
        assert f"figures/{name}.png" in text and f"Downstream task {task.task}" in text
        image = imread(report.figures[name])
        assert image.shape[1] > 1000 and image[..., :3].std() > 0.05  # drawn, not blank
        assert (report.out_dir / "figures" / f"{name}.pdf").is_file()
    hellaswag, piqa = (next(line for line in text.splitlines() if line.startswith(f"| {t} |"))
                       for t in ("hellaswag_rc_5shot", "piqa_rc_5shot"))
    assert f"`{BPB_COLUMN}`" in hellaswag and "LM loss (one step)" in piqa  # paired by name, or not


def test_no_section_without_task_columns(tmp_path):
    law_table().to_csv(tmp_path / "runs.csv", index=False)
    done = write_report(tmp_path / "runs.csv", tmp_path / "report", bootstrap=0, dpi=150)
    assert "Downstream" not in done.markdown.read_text()
    assert not any(name.startswith("downstream") for name in done.figures)


def test_a_named_task_column_that_is_not_there_is_refused(tmp_path, cli):
    ladder_with_two_tasks().to_csv(tmp_path / "ladder.csv", index=False)
    result = cli("report", tmp_path / "ladder.csv", "--out", tmp_path / "report", "--bootstrap", "0",
                 "--accuracy", "eval/downstream/hellaswag_acc")
    assert_usage_error(result, "--accuracy 'eval/downstream/hellaswag_acc': no such column", warnings=True)
    assert not (tmp_path / "report").exists()
