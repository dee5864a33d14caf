"""Malformed input to every command: exit status 2 and one `error:` line, or a `warning:` naming the problem
where the result stays meaningful; never a traceback; an output file it was asked to overwrite is left
byte for byte as it was when the command fails.

The analysis commands (`scaling fit`, `allocate`, `predict`, `regimes`, `report`, `runs`, `prepare`) run
in this process through the `cli` fixture (a subprocess costs seconds of imports each); a handful run as
real processes, with undecodable bytes and over-long arguments in their argv. `scaling-train` runs as a
process (Hydra) for every case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import BIN, PAPER, REPO, CliResult, assert_usage_error, run_process

LONG = "7" * 100_000  # one argument of 100k characters
UNDECODABLE = b"\xff\xfe\xfd".decode("utf-8", "surrogateescape")  # how Python sees non-UTF-8 argv bytes
PREVIOUS = b"a previous result that a failed command must not touch\n"
# The option that names each command's output, and whether that output is a folder.
OUTPUT = {"fit": ("--json", False), "allocate": ("--json", False), "predict": ("--json", False),
          "regimes": ("--json", False), "runs": ("--csv", False), "report": ("--out", True),
          "prepare": ("--out", True)}  # fmt: skip


def chinchilla(N, D):
    N, D = np.asarray(N), np.asarray(D)
    return PAPER["E"] + PAPER["A"] / N ** PAPER["alpha"] + PAPER["B"] / D ** PAPER["beta"]


def run_folder(folder: Path, n: float, d: float) -> None:
    """A contract run folder (summary.json, metrics.jsonl with a learning curve, config.yaml)."""
    folder.mkdir(parents=True)
    loss = float(chinchilla(n, d))
    rows = [{"step": s, "tokens": d * s / 4, "flops": 6 * n * d * s / 4, "lr": 1e-3,
             "train_loss": loss + 1 / s - 0.01, "val_loss": loss + 1 / s - 0.25, "elapsed_s": s,
             "tokens_per_s": 1e4} for s in range(1, 5)]  # fmt: skip
    rows[-1]["val_loss"] = loss
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"status": "completed", "n_params": n, "n_params_total": 1.2 * n, "n_layer": 2, "d_model": 64,
               "n_head": 2, "n_ctx": 128, "tokens": d, "unique_tokens": 1e12, "flops": 6 * n * d,
               "train_loss": loss - 0.01, "val_loss": loss, "seed": 0, "wall_s": 1.0}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text("train:\n  lr: 0.001\ndata:\n  name: default\n")


def sweep(root: Path) -> Path:
    for i, n in enumerate((1e7, 3e7, 1e8)):
        for j, d in enumerate((2e8, 6e8, 2e9)):
            run_folder(root / f"run{i}{j}", n, d)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    """Every malformed input, by name (files, folders and fit JSONs)."""
    root = tmp_path_factory.mktemp("corpus")
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5)))
    good = pd.DataFrame({"N": N, "D": D, "loss": chinchilla(N, D)})
    paths: dict[str, str] = {}

    def csv(name: str, table: pd.DataFrame | str | bytes) -> None:
        path = root / f"{name}.csv"
        if isinstance(table, pd.DataFrame):
            table = table.to_csv(index=False)
        path.write_bytes(table if isinstance(table, bytes) else table.encode())
        paths[name] = str(path)

    def cell(column: str, value) -> pd.DataFrame:
        table = good.astype(object)
        table.loc[3, column] = value
        return table

    csv("good", good)
    csv("empty", "")
    csv("header_only", "N,D,loss\n")
    csv("missing_column", good[["N", "loss"]])
    csv("text_in_numbers", cell("loss", "3.1 nats"))
    csv("nan", cell("loss", float("nan")))
    csv("inf", cell("D", float("inf")))
    csv("zero", cell("N", 0))
    csv("negative", cell("D", -2e9))
    csv("duplicated_rows", pd.concat([good, good.iloc[:4]]))
    csv("one_model_size", good[good["N"] == good["N"].min()])
    csv("units_off_1e9", good.assign(D=good["D"] / 1e9))  # D in billions of tokens
    csv("all_nan", "N,D,loss\nnan,nan,nan\n,,\n")
    csv("not_utf8", b"N,D,loss\n1e7,\xff\xfe2e8,3.1\n")
    csv("binary", bytes(range(256)) * 8)

    paths["no_runs"] = str(root / "no_runs")
    (root / "no_runs" / "empty_subfolder").mkdir(parents=True)
    torn = sweep(root / "torn_metrics")  # a writer killed in the middle of a metrics line: tolerated
    with open(torn / "run11" / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "tokens": 1e9, "val_lo')
    paths["torn_metrics"] = str(torn)
    cut = sweep(root / "summary_cut")  # a summary cut mid-write (not by us: ours are atomic)
    text = (cut / "run22" / "summary.json").read_text()
    (cut / "run22" / "summary.json").write_text(text[: len(text) // 2])
    paths["summary_cut"] = str(cut)
    damaged = sweep(root / "metrics_damaged")  # a damaged line before the last one
    lines = (damaged / "run01" / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "\x00\x00garbage\n"
    (damaged / "run01" / "metrics.jsonl").write_text("".join(lines))
    paths["metrics_damaged"] = str(damaged)

    def fit_json(name: str, document) -> None:
        path = root / f"{name}.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        paths[name] = str(path)

    fit_json("fit_chinchilla", {"law": "chinchilla", "params": PAPER})
    fit_json("fit_kaplan_c", {"law": "kaplan_c", "params": {"C_c": 3.1e8, "alpha_C": 0.05}})
    fit_json("fit_params_of_other_law", {"law": "chinchilla", "params": {"N_c": 8.8e13, "alpha_N": 0.076}})
    fit_json("fit_negative_exponent", {"law": "chinchilla", "params": {**PAPER, "alpha": -0.34}})
    fit_json("fit_text_value", {"law": "chinchilla", "params": {**PAPER, "E": "one point seven"}})
    fit_json("fit_unknown_law", {"law": "gpt", "params": PAPER})
    fit_json("fit_truncated", json.dumps({"law": "chinchilla", "params": PAPER})[:40])
    fit_json("fit_list", "[1, 2, 3]")
    fit_json("fit_ci_garbage", {"law": "chinchilla", "params": PAPER, "ci": {"E": 5}})

    short = root / "short.txt"
    short.write_text("to be or not to be")  # under the 2000 bytes a prepared folder needs
    paths["short_text"] = str(short)
    (root / "empty.txt").write_bytes(b"")
    paths["empty_text"] = str(root / "empty.txt")
    (root / "not_prepared").mkdir()
    (root / "not_prepared" / "notes.txt").write_text("mine")
    paths["not_prepared"] = str(root / "not_prepared")
    paths["long_path"] = str(root / ("x" * 300))  # a name over the file system's 255 bytes
    return paths


EXCLUDED = "excluded 1 run(s) with missing, NaN, infinite or non-positive N, D, C or loss: row 4"
PREDICT = ["--params", "1B", "--tokens", "20B"]
# id -> (argv with {name} standing for a corpus path, expectation, text the error/warning line holds).
# "error": exit 2, one `error:` line (warnings before it allowed), output untouched;
# "warning": exit 0 and a `warning:` line naming the problem; "ok": exit 0, no `error:` line.
TABLE_CASES = {
    "empty": ("error", "empty file"),
    "header_only": ("error", "no runs"),
    "missing_column": ("error", "needs columns loss and two of N, D, C"),
    "text_in_numbers": ("error", "column 'loss' must be numbers; row 4 has '3.1 nats'"),
    "not_utf8": ("error", "not UTF-8"),
    "binary": ("error", "not a readable CSV"),
    "all_nan": ("error", "no usable runs"),
    "no_runs": ("error", "no run folders"),
    "long_path": ("error", "File name too long"),
    "nan": ("warning", EXCLUDED),
    "inf": ("warning", EXCLUDED),
    "zero": ("warning", EXCLUDED),
    "negative": ("warning", EXCLUDED),
    "duplicated_rows": ("warning", "4 run(s) repeat another run's N, D, C and loss exactly"),
    "units_off_1e9": ("warning", "implausible tokens per parameter D/N = 1e-08"),
    "torn_metrics": ("ok", ""),
    "summary_cut": ("warning", "excluded 1 run(s) with status failed: {summary_cut}/run22"),
}  # fmt: skip
CASES: dict[str, tuple[list[str], str, str]] = {}
for name, (expect, says) in TABLE_CASES.items():
    CASES[f"fit/{name}"] = (["fit", f"{{{name}}}"], expect, says)
    CASES[f"regimes/{name}"] = (["regimes", f"{{{name}}}"], expect, says)
    if expect == "error":  # the report stops at the same check; its successful runs take too long here
        CASES[f"report/{name}"] = (["report", f"{{{name}}}", "--bootstrap", "0"], expect, says)
    if name not in ("units_off_1e9", "duplicated_rows"):  # the same reader: one command is enough
        CASES[f"allocate/{name}"] = (["allocate", f"{{{name}}}", "--approach", "3"], expect, says)
CASES.update({
    "fit/one_model_size": (["fit", "{one_model_size}"], "error", "needs at least 2 distinct values of N"),
    "allocate/one_model_size": (["allocate", "{one_model_size}", "--approach", "1"], "error",
                                "not identified by these runs (5 runs, one N"),
    "regimes/one_model_size": (["regimes", "{one_model_size}"], "warning", "too few to fit the chinchilla"),
    "report/one_model_size": (["report", "{one_model_size}"], "error", "needs at least 2 distinct values"),
    "allocate/metrics_damaged": (["allocate", "{metrics_damaged}", "--approach", "1"], "error",
                                 "{metrics_damaged}/run01/metrics.jsonl: line 2 is not valid JSON"),
    "regimes/metrics_damaged": (["regimes", "{metrics_damaged}"], "error",
                                "{metrics_damaged}/run01/metrics.jsonl: line 2 is not valid JSON"),
    "runs/not_a_folder": (["runs", "{good}"], "error", "not a folder of runs"),
    "runs/no_runs": (["runs", "{no_runs}"], "error", "no run folders"),
    "runs/long_path": (["runs", "{long_path}"], "error", "File name too long"),
    "runs/torn_metrics": (["runs", "{torn_metrics}"], "ok", ""),
    "runs/metrics_damaged": (["runs", "{metrics_damaged}"], "ok", ""),  # lists runs; reads summaries only
    "runs/summary_cut": (["runs", "{summary_cut}"], "ok", ""),  # the run is listed as failed (asserted below)
    # unknown law, a fit from another law, hand-edited fits
    "fit/unknown_law": (["fit", "{good}", "--law", "gpt4"], "error", "invalid choice: 'gpt4'"),
    "allocate/unknown_law": (["allocate", "{good}", "--approach", "3", "--law", "gpt4"], "error",
                             "invalid choice: 'gpt4'"),
    "regimes/unknown_law": (["regimes", "{good}", "--law", "gpt4"], "error", "unknown law 'gpt4'"),
    "report/unknown_law": (["report", "{good}", "--law", "gpt4"], "error", "invalid choice: 'gpt4'"),
    "predict/fit_of_other_law": (["predict", "{fit_kaplan_c}", "--params", "1B", "--optimal"], "error",
                                 "a kaplan_c fit has no compute-optimal allocation"),
    "allocate/fit_of_other_law": (["allocate", "{good}", "--approach", "3", "--fit", "{fit_kaplan_c}"],
                                  "error", "Approach 3 needs a law in N and D"),
    "regimes/fit_of_other_law": (["regimes", "{good}", "--fit", "{fit_kaplan_c}"], "error",
                                 "a kaplan_c fit has no compute-optimal allocation"),
    "predict/params_of_other_law": (["predict", "{fit_params_of_other_law}", *PREDICT], "error",
                                    "fit result for law chinchilla must have params E, A, B, alpha, beta"),
    "predict/negative_exponent": (["predict", "{fit_negative_exponent}", *PREDICT],
                                  "error", "alpha=-0.34, outside the range a fit can give"),
    "regimes/negative_exponent": (["regimes", "{good}", "--fit", "{fit_negative_exponent}"], "error",
                                  "alpha=-0.34, outside the range a fit can give"),
    "predict/text_value": (["predict", "{fit_text_value}", *PREDICT], "error",
                           "malformed fit result"),
    "predict/unknown_law_in_fit": (["predict", "{fit_unknown_law}", *PREDICT],
                                   "error", "unknown law 'gpt'"),
    "predict/truncated_fit": (["predict", "{fit_truncated}", *PREDICT], "error",
                              "not a fit result JSON"),
    "predict/json_list": (["predict", "{fit_list}", *PREDICT], "error",
                          "not a fit result"),
    "predict/ci_garbage": (["predict", "{fit_ci_garbage}", *PREDICT], "error",
                           "malformed fit result"),
    "predict/run_table_as_fit": (["predict", "{good}", *PREDICT], "error",
                                 "not a fit result JSON"),
    "predict/binary_as_fit": (["predict", "{binary}", *PREDICT], "error",
                              "not a fit result JSON"),
    "predict/empty_as_fit": (["predict", "{empty}", *PREDICT], "error",
                             "not a fit result JSON"),
    "allocate/truncated_fit": (["allocate", "{good}", "--approach", "3", "--fit", "{fit_truncated}"], "error",
                               "not a fit result JSON"),
    # numbers in options: text, NaN, infinite, zero, negative, out of range
    "predict/text_params": (["predict", "{fit_chinchilla}", "--params", "lots", "--tokens", "20B"], "error",
                            "N (parameters) 'lots' is not a number"),
    "predict/nan_tokens": (["predict", "{fit_chinchilla}", "--params", "1B", "--tokens", "nan"], "error",
                           "D (tokens) 'nan' is not a number"),
    "predict/inf_params": (["predict", "{fit_chinchilla}", "--params", "inf", "--tokens", "20B"], "error",
                           "N (parameters) 'inf' is not a number"),
    "predict/zero_params": (["predict", "{fit_chinchilla}", "--params", "0", "--tokens", "20B"], "error",
                            "must be a positive finite number"),
    "predict/huge_params": (["predict", "{fit_chinchilla}", "--params", "1e400", "--tokens", "20B"], "error",
                            "must be a positive finite number"),
    "predict/nan_mfu": (["predict", "{fit_chinchilla}", "--params", "1B", "--tokens", "20B", "--mfu", "nan"],
                        "error", "MFU must lie in (0, 1]"),
    "predict/unknown_gpu": (["predict", "{fit_chinchilla}", *PREDICT, "--gpu", "tpu"], "error",
                            "unknown accelerator 'tpu'"),
    "predict/nothing_to_predict": (["predict", "{fit_chinchilla}", "--params", "1B"], "error",
                                   "exactly one of --tokens, --compute, --optimal; or --compute with"),
    "fit/negative_bootstrap": (["fit", "{good}", "--bootstrap", "-5"], "error", "--bootstrap must be >= 0"),
    "fit/negative_seed": (["fit", "{good}", "--bootstrap", "5", "--seed", "-1"], "error", "--seed must be"),
    "fit/nan_delta": (["fit", "{good}", "--delta", "nan"], "error", "--delta must be a positive number"),
    "fit/holdout_out_of_range": (["fit", "{good}", "--holdout-top", "2"], "error", "--holdout-top must be"),
    "fit/drop_everything": (["fit", "{good}", "--drop-top-loss", "100"], "error", "--drop-top-loss must be"),
    "fit/text_bootstrap": (["fit", "{good}", "--bootstrap", "many"], "error", "invalid int value: 'many'"),
    "fit/bad_map": (["fit", "{good}", "--map", "N=Model Size"], "error", "no column 'Model Size'"),
    "allocate/zero_budget": (["allocate", "{good}", "--approach", "3", "--budgets", "0,1e21"], "error",
                             "--budgets entry must be a positive finite number"),
    "allocate/nan_tolerance": (["allocate", "{good}", "--approach", "2", "--isoflop-tolerance", "nan"],
                               "error", "--isoflop-tolerance must be a fraction"),
    "allocate/window_2": (["allocate", "{good}", "--approach", "2", "--window", "2"], "error",
                          "--window must be a whole number of at least 3 sizes"),
    "regimes/negative_band": (["regimes", "{good}", "--band", "-1"], "error", "band must be a factor > 1"),
    "report/low_dpi": (["report", "{good}", "--dpi", "10"], "error", "--dpi must be at least 150"),
    "report/holdout_too_big": (["report", "{good}", "--holdout-top", "5"], "error", "--holdout-top must"),
    "report/negative_seed": (["report", "{good}", "--seed", "-1"], "error", "--seed must be >= 0"),
    "report/window_2": (["report", "{good}", "--window", "2"], "error",
                        "--window must be a whole number of at least 3 sizes"),
    "report/unknown_profile_fit": (["report", "{good}", "--profile-fit", "spline"], "error",
                                   "invalid choice: 'spline'"),
    # over-long and undecodable arguments (as Python gives them: surrogate escapes; more in real processes)
    "fit/long_argument": (["fit", LONG], "error", "File name too long"),
    "predict/long_argument": (["predict", "{fit_chinchilla}", "--params", "1B", "--tokens", LONG], "error",
                              "D (tokens) must be a positive finite number, got '7777777"),
    "allocate/long_budgets": (["allocate", "{good}", "--approach", "3", "--budgets", LONG], "error",
                              "--budgets entry must be a positive finite number"),
    "fit/long_map": (["fit", "{good}", "--map", LONG], "error", "is not NEW=OLD"),
    "predict/undecodable_argument": (["predict", "{fit_chinchilla}", "--params", UNDECODABLE, "--optimal"],
                                     "error", "is not a number"),
    # prepare: text that is too short or missing, outputs that are not data folders
    "prepare/empty_text": (["prepare", "{empty_text}"], "error", "only 0 tokens; need at least 2000"),
    "prepare/short_text": (["prepare", "{short_text}"], "error", "only 18 tokens; need at least 2000"),
    "prepare/missing_text": (["prepare", "{no_runs}/nothing.txt"], "error", "cannot read text file"),
    "prepare/folder_as_text": (["prepare", "{no_runs}"], "error", "cannot read text file"),
    "prepare/long_argument": (["prepare", LONG], "error", "File name too long"),
    "prepare/out_is_a_file": (["prepare", "{binary}", "--out", "{good}"], "error", "is a file; give"),
    "prepare/out_not_prepared": (["prepare", "{binary}", "--out", "{not_prepared}"], "error",
                                 "non-empty folder that is not prepared data"),
    "prepare/binary_text_is_fine": (["prepare", "{binary}"], "ok", ""),  # byte-level: any bytes are text
})  # fmt: skip


def expand(argv: list[str], corpus: dict[str, str]) -> list[str]:
    return [a if a in (LONG, UNDECODABLE) else a.format(**corpus) for a in argv]


def previous_output(tmp_path: Path, command: str, argv: list[str], cli) -> Path | None:
    """The command's output, made to exist already (unless the case names one itself)."""
    option, is_folder = OUTPUT[command]
    if option in argv:
        return Path(argv[argv.index(option) + 1])
    out = tmp_path / "previous"
    if command == "prepare":  # a prepared data folder from an earlier, good `scaling prepare`
        assert cli("prepare", REPO / "README.md", "--out", out).status == 0
    elif is_folder:  # an earlier report
        (out / "figures").mkdir(parents=True)
        (out / "report.md").write_bytes(PREVIOUS)
        (out / "figures" / "loss.png").write_bytes(PREVIOUS)
    else:
        out.write_bytes(PREVIOUS)
    argv += [option, str(out)]
    return out


def snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def check(result: CliResult, expect: str, says: str, case: str) -> None:
    if expect == "error":
        assert_usage_error(result, says, warnings=True)
        return
    lines = result.err.strip().splitlines()
    assert "Traceback" not in result.err, (case, result.err)
    assert all(line.startswith("warning:") for line in lines), (case, result.err)
    assert result.status == 0, (case, result.status, result.err)
    if expect == "warning":
        assert any(says in line for line in lines), (case, says, result.err)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, corpus, tmp_path, cli, monkeypatch):
    argv, expect, says = CASES[case]
    argv = expand(argv, corpus)
    monkeypatch.chdir(tmp_path)  # outputs of successful cases land here
    out = previous_output(tmp_path, argv[0], argv, cli)
    before = snapshot(out) if out is not None and out.exists() else None
    check(cli(*argv), expect, says.format(**corpus), case)
    if expect == "error" and before is not None:
        assert snapshot(out) == before, f"{case}: the existing output was changed"
    if case == "runs/summary_cut":
        table = pd.read_csv(out)
        status = dict(zip(table["run"].map(lambda r: Path(r).name), table["status"], strict=True))
        assert status["run22"] == "failed" and list(status.values()).count("completed") == 8


# ---- real processes: argv bytes, no traceback on the real stderr ----------------------------------------
@pytest.mark.slow
def test_real_processes_with_undecodable_and_long_arguments(corpus, tmp_path):
    """Undecodable argv bytes and a 100k-character argument reach real processes; a run folder named in
    another encoding is listed and written to a valid UTF-8 CSV."""
    named = tmp_path / "sweep"
    run_folder(Path(os.fsdecode(bytes(named) + b"/r\xff\xfe")), 1e7, 2e8)
    scaling = str(BIN / "scaling")
    calls = {
        "fit bytes": ([scaling, "fit", b"/no/such/\xff\xfe.csv"], 2),
        "runs bytes argument": ([scaling, "runs", b"\xff\xfe"], 2),
        "predict long": ([scaling, "predict", corpus["fit_chinchilla"], "--params", LONG, "--optimal"], 2),
        "runs bytes folder": ([scaling, "runs", str(named), "--csv", str(tmp_path / "runs.csv")], 0),
    }
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(calls, pool.map(lambda c: run_process(c[0]), calls.values()), strict=True))
    for name, done in results.items():
        if calls[name][1] == 2:
            assert_usage_error(done)
        else:
            assert done.status == 0 and done.err.strip() == "", (name, done.err)
    text = (tmp_path / "runs.csv").read_bytes().decode("utf-8")  # valid UTF-8
    assert "r\\udcff\\udcfe" in text


# ---- scaling-train ------------------------------------------------------------------------------------
TINY = ["model=tiny_10k", "train.batch_size=4", "train.eval_tokens=1024", "train.threads=1"]
RESUMABLE = ["train.evals=4", "train.tokens=60k"]  # the interrupted run below
TRAIN_CASES = {
    "unknown preset": (["model=gpt5"], "Could not find 'model/gpt5'"),
    "unknown sweep": (["-m", "+sweep=nope"], "Could not find 'sweep/nope'"),
    "text in numbers": (["train.tokens=lots"], "train.tokens 'lots' is not a number"),
    "text in a float key": (["train.weight_decay=abc"], "train.weight_decay must be a number in [0, inf)"),
    "text in an int key": (["train.evals=abc"], "train.evals 'abc' is not a number"),
    "nan": (["train.lr=nan"], "train.lr must be a positive finite number"),
    "inf": (["train.tokens=inf"], "train.tokens must be a positive finite number"),
    "zero": (["train.batch_size=0"], "train.batch_size must be a positive finite number"),
    "negative": (["train.grad_clip=-1"], "train.grad_clip must be a positive finite number"),
    "negative seed": (["train.seed=-1"], "train.seed must be a non-negative integer"),
    "beta out of range": (["train.beta1=1.5"], "train.beta1 must be a number in [0, 1)"),
    "zero threads": (["train.threads=0"], "train.threads must be a positive finite number"),
    "budget too small": (["train.tokens=500"], "smaller than one batch"),
    "misspelt key": (["+train.tokns=1M"], "train.tokns (did you mean train.tokens?)"),
    "over-long argument": ([f"train.tokens={LONG}"], "too long (at most 4096)"),
    "undecodable argument": ([b"train.lr=\xff\xfe"], "LexerNoViableAltException"),
    "data not prepared": (["data.name={not_prepared}"], "is not a prepared data folder"),
    "data is a file": (["data.name={binary}"], "does not exist"),
    "damaged config.yaml": (["+damage=config"], "has a damaged config.yaml"),
    "damaged metrics.jsonl": (["+damage=metrics"], "metrics.jsonl: line 2 is not valid JSON"),
    "foreign checkpoint": (["+damage=checkpoint"], "is not a readable weights-only checkpoint"),
}


def run_files(run_dir: Path) -> dict[str, bytes]:
    """The run's own files; Hydra writes .hydra/ and train.log for every job it starts, good or bad, and
    the trainer names itself in the lock file (.lock) of a folder it trains."""
    if not run_dir.exists():
        return {}
    return {k: v for k, v in snapshot(run_dir).items() if not k.startswith((".hydra", "train.log", ".lock"))}


def damaged_run(kind: str, template: Path, folder: Path) -> None:
    """A copy of an interrupted run folder (checkpoint kept), damaged in one file."""
    shutil.copytree(template, folder)
    if kind == "config":
        (folder / "config.yaml").write_bytes(b"model: {n_layer: [\xff")
    elif kind == "metrics":
        rows = (folder / "metrics.jsonl").read_text().splitlines(keepends=True)
        (folder / "metrics.jsonl").write_text(rows[0] + "{garbage\n" + "".join(rows[1:]))
    else:
        (folder / "ckpt.pt").write_bytes(b"\x80\x04\x95" + os.urandom(64))


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    """A tiny run stopped (SIGTERM) after its first evaluation: config, metrics rows, checkpoint."""
    folder = tmp_path_factory.mktemp("interrupted") / "run"
    args = [*TINY, *RESUMABLE, f"hydra.run.dir={folder}"]
    proc = subprocess.Popen([str(BIN / "scaling-train"), *args], stderr=subprocess.PIPE, cwd=folder.parent)
    while proc.poll() is None and not (folder / "ckpt.pt").exists():
        time.sleep(0.05)
    proc.terminate()
    proc.wait(timeout=120)
    assert (folder / "ckpt.pt").exists() and len((folder / "metrics.jsonl").read_text().splitlines()) >= 1
    return folder


@pytest.mark.slow
def test_scaling_train_bad_input(corpus, interrupted_run, tmp_path):
    def attempt(case: str):
        overrides, _ = TRAIN_CASES[case]
        run_dir = tmp_path / case.replace(" ", "_")
        args = [o.format(**corpus) if isinstance(o, str) and "{" in o else o for o in overrides]
        damage = [a for a in args if isinstance(a, str) and a.startswith("+damage=")]
        if damage:
            args.remove(damage[0])
            damaged_run(damage[0].split("=")[1], interrupted_run, run_dir)
            args = [*TINY, *RESUMABLE, *args]
        else:
            args = [*TINY, "train.tokens=20k", "train.evals=2", *args]
        args = sorted(args, key=lambda a: not str(a).startswith("-"))  # flags (-m) before overrides
        before = run_files(run_dir)
        done = run_process([BIN / "scaling-train", *args, f"hydra.run.dir={run_dir}",
                            f"hydra.sweep.dir={run_dir}"], cwd=tmp_path)  # fmt: skip
        return case, done, before, run_files(run_dir)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, TRAIN_CASES))
    for case, done, before, after in results:
        assert_usage_error(done, TRAIN_CASES[case][1])
        assert after == before, f"{case}: the run folder was changed"


def test_argument_constraints_are_declared_once_and_checked_given_or_defaulted():
    """`checked` reads each argument, positional, keyword or defaulted, against its declared constraint
    and raises the message "`name` <rule>, got <value>" (which the CLI rewrites into its flags)."""
    from scaling.errors import NON_NEGATIVE, UsageError, checked, one_of

    @checked(seed=NON_NEGATIVE, mode=one_of(("a", "b")))
    def work(seed: int, *, mode: str = "c") -> int:
        return seed

    with pytest.raises(UsageError, match=r"^`seed` must be >= 0, got -1$"):
        work(-1, mode="a")
    with pytest.raises(UsageError, match=r"^`mode` must be one of a, b, got 'c'$"):
        work(0)  # the default is checked too
    assert work(3, mode="b") == 3 and set(work.__constraints__) == {"seed", "mode"}
