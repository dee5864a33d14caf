"""The command line's edges (issue 24, items 14-16): a reader that closes the pipe early, an output folder
that cannot be made, and the messages of rough input."""

from __future__ import annotations

import subprocess

from helpers import BIN, assert_usage_error, law_table


def closed_pipe(argv: list) -> tuple[int, str]:
    """`scaling ARGV` as a real process whose reader has gone (`| head -0`): its status and stderr."""
    process = subprocess.Popen(
        [str(BIN / "scaling"), *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # before the command prints anything
    err = process.stderr.read()
    return process.wait(timeout=300), err


def test_a_closed_pipe_loses_no_file_and_ends_quietly(tmp_path):
    runs = tmp_path / "runs.csv"
    law_table().to_csv(runs, index=False)
    status, err = closed_pipe(["fit", runs, "--json", tmp_path / "f.json"])
    assert (status, err) == (141, ""), err
    assert (tmp_path / "f.json").is_file()
    status, err = closed_pipe(
        ["plan", "--budget", "1e17", "--target-params", "1e9", "--optimal", "--max-params", "3e7",
         "--out", tmp_path / "sweep/p.yaml", "--json", tmp_path / "p.json"]
    )
    assert (status, err) == (141, ""), err
    assert (tmp_path / "sweep/p.yaml").is_file() and (tmp_path / "p.json").is_file()


def test_report_checks_its_output_folder_before_the_analysis(tmp_path, cli):
    runs = tmp_path / "runs.csv"
    law_table().to_csv(runs, index=False)
    (tmp_path / "afile").write_text("a file")
    error = assert_usage_error(cli("report", runs, "--out", tmp_path / "afile/sub"), "afile is a file")
    assert "--out" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "runs.csv"]
