"""The command line's edges (issue 24, items 14-16): a reader that closes the pipe early, an output folder
that cannot be made, and the messages of rough input."""

from __future__ import annotations

import resource
import subprocess

from helpers import BIN, CliResult, assert_usage_error, law_table, write_run


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
    write_run(tmp_path / "runs" / "only")
    status, err = closed_pipe(["runs", tmp_path / "runs", "--csv", tmp_path / "table.csv"])
    assert (status, err) == (141, ""), err
    assert (tmp_path / "table.csv").is_file()


def test_report_checks_its_output_folder_before_the_analysis(tmp_path, cli):
    runs = tmp_path / "runs.csv"
    law_table().to_csv(runs, index=False)
    (tmp_path / "afile").write_text("a file")
    error = assert_usage_error(cli("report", runs, "--out", tmp_path / "afile/sub"), "afile is a file")
    assert "--out" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "runs.csv"]


def test_rough_edges_say_what_to_do(tmp_path, cli):
    table = tmp_path / "pt.csv"
    table.write_text("params,tokens,loss\n1e7,1e9,3.0\n2e7,1e9,2.9\n")
    assert_usage_error(cli("fit", table), "e.g. N=params,D=tokens")
    help_text = " ".join(cli("fit", "--help").out.split())
    assert "unless another law or fit subset clearly beats it" in help_text
    assert "lowest error" not in help_text
    runs = tmp_path / "runs.csv"
    law_table().to_csv(runs, index=False)
    assert cli("fit", runs, "--json", tmp_path / "f.json").status == 0
    near = cli("predict", tmp_path / "f.json", "--params", "175B", "--tokens", "300B").out
    assert "N         175B parameters (shape of preset gpt3_175b, whose N is 174B)" in near
    exact = cli("predict", tmp_path / "f.json", "--params", "gpt3_175b", "--tokens", "300B").out
    assert "(preset gpt3_175b)" in exact
    write_run(tmp_path / "sweep" / "only")
    assert cli("runs", tmp_path / "sweep").out.startswith(f"1 run in {tmp_path / 'sweep'}: 1 completed")


def test_out_of_memory_in_a_bootstrap_advises_fewer_resamples(tmp_path):
    runs = tmp_path / "runs.csv"
    law_table().to_csv(runs, index=False)

    def limit_memory():  # a batch job's cap: far below what 10^8 resamples hold
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))

    done = subprocess.run(
        [BIN / "scaling", "fit", runs, "--bootstrap", "100000000"],
        preexec_fn=limit_memory, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert_usage_error(
        CliResult(done.returncode, done.stdout, done.stderr), "out of memory", "fewer resamples (--bootstrap"
    )
