"""Run tables: collecting run folders (Hydra and SLURM layouts), reading CSVs, validation warnings."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CHINCHILLA_CSV, write_run

from scaling.errors import ScalingWarning, UsageError
from scaling.runs.table import collect_runs, compute_frontier, load_runs, parse_column_map, read_metrics


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun" / "2024-01-01" / "12-00-00"
    write_run(root / "0", n=1e6, loss=3.2)
    write_run(root / "1", n=2e6, loss=3.0)
    write_run(root / "2", status="diverged", n=4e6, loss=float("nan"))
    # a SLURM (submitit) layout: job logs in hidden folders that are not runs
    write_run(root / "3", n=8e6, loss=2.9)
    (root / ".submitit" / "123_0").mkdir(parents=True)
    (root / ".submitit" / "123_0" / "metrics.jsonl").write_text("{}\n")
    (root / "4").mkdir()
    (root / "4" / "metrics.jsonl").write_text('{"step": 1}\n')  # started, no summary yet
    (root / "5").mkdir()
    (root / "5" / "summary.json").write_text('{"status": "compl')  # unreadable
    return tmp_path / "multirun"


def test_collect_runs_lists_every_run_folder_in_every_state(sweep):
    table = collect_runs(sweep)
    assert len(table) == 6
    assert list(table.columns[:7]) == ["N", "D", "C", "loss", "U", "run", "status"]
    assert (table["N_total"].dropna() > table["N"].dropna()).all()  # summary's n_params_total: all params
    status = dict(zip(table["run"].map(lambda r: Path(r).name), table["status"], strict=True))
    assert status == {"0": "completed", "1": "completed", "2": "diverged", "3": "completed", "4": "running",
                      "5": "failed"}  # fmt: skip
    assert not table["run"].str.contains(".submitit").any()
    first = table.iloc[0]
    assert first["N"] == 1e6 and first["D"] == 2e7 and first["C"] == 6 * 1e6 * 2e7 and first["U"] == 5e6
    assert first["train.lr"] == 0.001 and first["data.name"] == "default" and first["n_layer"] == 2


def test_load_runs_excludes_unusable_runs_naming_them(sweep):
    with pytest.warns(ScalingWarning) as caught:
        table = load_runs(sweep)
    assert len(table) == 3 and set(table["status"]) == {"completed"}
    messages = " ".join(str(w.message) for w in caught)
    assert "status diverged" in messages and "/2" in messages
    assert "status running" in messages and "status failed" in messages


def test_read_metrics_skips_a_torn_last_line(sweep):
    run = next(p for p in sweep.rglob("0") if p.is_dir())
    metrics = read_metrics(run)
    assert list(metrics["step"]) == [1, 2, 3]
    assert read_metrics(sweep).empty  # no metrics.jsonl: an empty table


def test_csv_with_column_map_and_any_two_of_n_d_c():
    table = load_runs(CHINCHILLA_CSV, parse_column_map("N=Model Size,C=Training FLOP"))
    assert len(table) == 245
    np.testing.assert_allclose(table["D"], table["C"] / (6 * table["N"]))
    dropped = load_runs(CHINCHILLA_CSV, {"N": "Model Size", "C": "Training FLOP"}, drop_top_loss=5)
    assert len(dropped) == 240 and dropped["loss"].max() < 3.44
    frame = pd.DataFrame({"D": [1e9, 2e9], "C": [6e18, 2.4e19], "loss": [3.0, 2.9]})
    np.testing.assert_allclose(load_runs(frame)["N"], [1e9, 2e9])


def test_invalid_values_are_excluded_with_a_warning(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(
        "run,N,D,loss\na,1e8,2e9,3.0\nb,2e8,nan,2.9\nc,-3e8,4e9,2.8\nd,4e8,8e9,inf\ne,5e8,9e9,2.5\n"
    )
    with pytest.warns(ScalingWarning, match="excluded 3 run.*b, c, d"):
        table = load_runs(path)
    assert list(table["run"]) == ["a", "e"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"N,D,loss\n", "header but no rows"),
        (b"N,D,loss\n1e8,2e9,3.0\n\xff\xfe,1,2\n", "not UTF-8"),
        (b"N,D,loss\n1e8,2e9,3.0\n2e8,lots,2.9\n", "column 'D' must be numbers; row 2 has 'lots'"),
        (b"N,tokens,loss\n1e8,2e9,3.0\n", "needs columns loss and two of N, D, C"),
    ],
)
def test_bad_csv_is_a_usage_error(tmp_path, content, message):
    path = tmp_path / "runs.csv"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load_runs(path)


def test_bad_column_map_and_missing_source(tmp_path):
    with pytest.raises(UsageError, match="not NEW=OLD"):
        parse_column_map("N:Model Size")
    with pytest.raises(UsageError, match="no column 'Size'"):
        load_runs(CHINCHILLA_CSV, {"N": "Size"})
    with pytest.raises(UsageError, match="no such file"):
        load_runs(tmp_path / "missing.csv")
    with pytest.raises(UsageError, match="no run folders"):
        collect_runs(tmp_path)


def test_tokens_per_parameter_sanity_warning():
    frame = pd.DataFrame({"N": [1e9, 2e9, 4e9], "D": [20.0, 40.0, 80.0], "loss": [3.0, 2.9, 2.8]})  # D in B
    with pytest.warns(ScalingWarning, match="implausible tokens per parameter.*is D given in billions"):
        load_runs(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs(frame.assign(D=frame["D"] * 1e9))


def test_compute_frontier():
    frame = pd.DataFrame({"C": [1, 2, 3, 4, 5.0], "loss": [3.0, 3.1, 2.8, 2.9, 2.5], "N": [1, 2, 3, 4, 5.0]})
    assert list(compute_frontier(frame)["C"]) == [1, 3, 5]


def test_series_groups_are_the_runs_sharing_a_value_within_one_percent():
    from scaling.runs.table import series_groups

    table = pd.DataFrame({"N": [1e7, 2e7, 4e7, 1e7, 3e7], "D": [1e9, 1.005e9, 0.998e9, 5e9, 9e9]})
    groups = series_groups(table, by="D", across="N")  # one budget (within 1 %) over three sizes
    assert [g.index.tolist() for g in groups] == [[0, 1, 2]]
    assert len(series_groups(table, by="D", across="N", min_points=1)) == 3
