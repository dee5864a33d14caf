"""The `scaling runs`, `scaling fit` and `scaling allocate` commands: output, JSON, bad input."""

import json

import pytest
from helpers import BIN, CHINCHILLA_CSV, assert_usage_error, isoflop_table, run_process, write_run

DATA = str(CHINCHILLA_CSV)
MAP = ["--map", "N=Model Size,C=Training FLOP"]


def test_fit_chinchilla_data_with_everything(cli, tmp_path):
    out_json = tmp_path / "fit.json"
    status, out, err = cli(
        "fit", DATA, *MAP, "--drop-top-loss", "5", "--bootstrap", "100", "--json", out_json,
        "--test-params", "E=1.69,A=406.4,B=410.7,alpha=0.34,beta=0.28", "--holdout-top", "0.1",
    )  # fmt: skip
    assert status == 0, err
    assert "fitted on 240 runs" in out and "nats/token" in out and "95 % CI" in out
    assert "likelihood-ratio test" in out and "rejected at 5 %" in out
    assert "backtest: chinchilla fitted on the 216 runs" in out
    document = json.loads(out_json.read_text())
    assert document["law"] == "chinchilla" and document["n_points"] == 240 and document["converged"] is True
    assert document["objective"] <= 0.00101829
    assert set(document["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert set(document["ci"]) >= {"E", "A", "B", "alpha", "beta", "a", "b"}
    assert set(document["compute_optimal"]) >= {"a", "b", "G"}
    assert document["likelihood_ratio_test"]["p_value"] < 1e-16
    assert document["backtest"]["n_heldout"] == 24 and len(document["backtest"]["runs"]) == 24


def test_fit_other_laws_and_allocate(cli, tmp_path):
    table = tmp_path / "isoflop.csv"
    isoflop_table(noise=0.002).to_csv(table, index=False)
    status, out, _ = cli("fit", table, "--law", "kaplan_nd")
    assert status == 0 and "law kaplan_nd" in out and "N_c" in out
    out_json = tmp_path / "alloc.json"
    status, out, err = cli("allocate", table, "--approach", "2", "--bootstrap", "50", "--json", out_json)
    assert status == 0, err
    document = json.loads(out_json.read_text())
    assert document["approach"] == 2 and abs(document["a"] - 0.4516) < 0.02
    assert set(document["ci"]) >= {"a", "b"} and document["tokens_per_param"]
    assert document["profile_fit"] == "window" and document["window"] == 5 and "5 sizes nearest" in out
    assert [sum(p["used"]) for p in document["profiles"]] == [5] * 6
    for options, used in (
        (["--profile-fit", "parabola"], 9),
        (["--profile-fit", "akima"], 9),
        (["--window", "7"], 7),
    ):
        status, out, err = cli("allocate", table, "--approach", "2", *options, "--json", out_json)
        document = json.loads(out_json.read_text())
        assert status == 0 and [sum(p["used"]) for p in document["profiles"]] == [used] * 6, err
        assert abs(document["a"] - 0.4516) < 0.05  # Akima goes through every noisy point
    status, out, _ = cli("allocate", table, "--approach", "3", "--budgets", "1e21,5.76e23")
    assert status == 0 and "5.76e+23" in out


def test_runs_command_writes_the_table(cli, tmp_path):
    write_run(tmp_path / "sweep" / "0", n=1e6, loss=3.2)
    write_run(tmp_path / "sweep" / "1", status="diverged", n=2e6, loss=float("nan"))
    csv = tmp_path / "runs.csv"
    status, out, _ = cli("runs", tmp_path / "sweep", "--csv", csv)
    assert status == 0 and "1 completed" in out and "1 diverged" in out
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("N,D,C,loss,U,run,status") and len(lines) == 3
    result = cli("fit", csv, "--law", "kaplan_n")
    assert_usage_error(result, warnings=True)
    assert "status diverged" in result.err  # warned, then too few runs for the law


BAD_TABLES = {
    "empty.csv": (b"", "empty file"),
    "header.csv": (b"N,D,loss\n", "no rows"),
    "latin1.csv": ("N,D,loss\n1e8,2e9,3.0\n2e8,4e9,2.9é\n".encode("latin-1"), "not UTF-8"),
    "text.csv": (b"N,D,loss\n1e8,2e9,3.0\n2e8,4e9,low\n", "must be numbers"),
    "columns.csv": (b"params,tokens,loss\n1e8,2e9,3.0\n", "two of N, D, C"),
    "few.csv": (b"N,D,loss\n1e8,2e9,3.0\n2e8,4e9,2.9\n", "5 parameters but only 2"),
    "one_size.csv": (b"N,D,loss\n" + b"".join(b"1e8,%de9,%.2f\n" % (i, 3 - i / 10) for i in range(1, 9)),
                     "distinct values of N"),
    "flat.csv": (b"N,D,loss\n" + b"".join(b"%de8,%de9,3.0\n" % (i, i) for i in range(1, 9)),
                 "losses are equal"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_input_exits_2_with_one_error_line(cli, tmp_path, name):
    content, message = BAD_TABLES[name]
    path = tmp_path / name
    path.write_bytes(content)
    out_json = tmp_path / "fit.json"
    out_json.write_text("previous result\n")
    assert_usage_error(cli("fit", path, "--json", out_json), message, warnings=True)
    assert out_json.read_text() == "previous result\n"  # nothing already written is lost


def test_bad_options(cli, tmp_path):
    table = tmp_path / "isoflop.csv"
    isoflop_table().to_csv(table, index=False)
    for argv, message in (
        (["fit", table, "--law", "data_constrained"], "needs column U"),
        (["fit", table, "--test-params", "E=1.69,A"], "not NAME=NUMBER"),
        (["fit", table, "--holdout-top", "2"], "between 0 and 1"),
        (["fit", table, "--map", "N"], "not NEW=OLD"),
        (["fit", table, "--drop-top-loss", "1000"], "--drop-top-loss must be between"),
        (["allocate", table, "--approach", "1", "--budgets", "lots"], "is not a number"),
    ):
        assert_usage_error(cli(*argv), message)
    assert_usage_error(cli("fit", table, "--law", "gpt4"), "invalid choice")  # argparse's own errors


@pytest.mark.parametrize(
    "argv, line",
    [
        (["fit", "{t}", "--delta", "-1"], "error: --delta must be a positive number, got -1.0"),
        (["fit", "{t}", "--method", "classic", "--bootstrap", "3"],
         "error: --method classic is for comparison only; bootstrap with the default method"),
        (["fit", "{t}", "--procedure", "two-stage"],
         "error: unknown procedure 'two_stage' for law chinchilla; choose joint"),
        (["allocate", "{t}", "--approach", "2", "--window", "2"],
         "error: --window must be a whole number of at least 3 sizes (a parabola needs 3), got 2"),
        (["regimes", "{t}", "--tail", "1.5"], "error: --tail must be a fraction in (0, 1), got 1.5"),
        (["report", "{t}", "--out", "{o}", "--seed", "-1"], "error: --seed must be >= 0, got -1"),
        (["predict", "{f}", "--params", "1B"],
         "error: give --params with exactly one of --tokens, --compute, --optimal; or --compute with "
         "--optimal (got --params yes, nothing else)"),
    ],
)  # fmt: skip
def test_library_messages_name_the_flag_the_user_typed(cli, tmp_path, argv, line):
    """The library names its Python arguments (`window`); the CLI shows each as its flag, once for all."""
    table = tmp_path / "isoflop.csv"
    isoflop_table().to_csv(table, index=False)
    fit_json = tmp_path / "fit.json"
    fit_json.write_text(json.dumps({"law": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7,
                                                                    "alpha": 0.34, "beta": 0.28}}))
    paths = {"t": table, "o": tmp_path / "report", "f": fit_json}
    result = cli(*(a.format(**paths) for a in argv))
    assert_usage_error(result)
    assert result.out == "" and result.err == line + "\n"


def test_console_script_error_has_no_traceback(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("N,D,loss\n")
    assert_usage_error(run_process([BIN / "scaling", "fit", path]))


def test_a_warning_is_printed_once(cli, tmp_path):
    table = isoflop_table()
    path = tmp_path / "billions.csv"
    table.assign(D=table["D"] / 1e9).to_csv(path, index=False)  # D given in billions by mistake
    status, _, err = cli("fit", path, "--holdout-top", "0.2")
    assert status == 0 and err.count("implausible tokens per parameter") == 1, err
