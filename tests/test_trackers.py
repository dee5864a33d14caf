"""Runs from trackers, in and out: MLflow (SQLite store and a real `mlflow server` on 127.0.0.1),
TensorBoard event files written by torch's SummaryWriter, W&B (an export as the UI writes it, and offline
run folders written by wandb itself), and a sweep logged by scaling-train and read back."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import BIN, CliResult, assert_usage_error, run_process

from scaling.runs.table import collect, curve_of, load_runs
from scaling.runs.trackers import detect

# A law the logged runs follow, so that a fit of the collected table can be checked.
E, A, B, ALPHA, BETA = 1.8, 400.0, 2000.0, 0.34, 0.36
SIZES = [2e6, 5e6, 1.2e7]
TOKEN_COUNTS = [4e7, 1e8, 2.5e8]
MAP = "N=model/params,D=data.tokens,loss=eval/loss"
KEYS = {"N": "model/params", "D": "data.tokens", "loss": "eval/loss"}  # MAP as load_runs takes it

pytestmark = pytest.mark.usefixtures("scaling_cache")


def law(N, D):
    return E + A / N**ALPHA + B / D**BETA


def planted_runs():
    """(name, N, D, [(step, loss), ...]) for a 3 x 3 grid; the curve ends at the law's loss."""
    out = []
    for N in SIZES:
        for D in TOKEN_COUNTS:
            steps = [100, 200, 300, 400]
            curve = [(s, float(law(N, D * s / 400))) for s in steps]
            out.append((f"n{N:.0e}-d{D:.0e}", N, D, curve))
    return out


def check_table(table: pd.DataFrame) -> None:
    """The collected table holds the planted runs exactly."""
    assert len(table) == 9
    got = table.sort_values(["N", "D"]).reset_index(drop=True)
    want = sorted((N, D) for _, N, D, _ in planted_runs())
    assert list(zip(got["N"], got["D"], strict=True)) == want
    np.testing.assert_allclose(got["loss"], law(got["N"], got["D"]), rtol=1e-6)
    np.testing.assert_allclose(got["C"], 6 * got["N"] * got["D"])


LOG_WITH_MLFLOW = textwrap.dedent(
    """
    # A user's own training script: not ours, only the mlflow client.
    import json, sys, mlflow
    uri, experiment, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    for name, N, D, curve in runs:
        with mlflow.start_run(run_name=name):
            mlflow.log_params({"model/params": N, "data.tokens": D, "optimizer": "adamw"})
            for step, loss in curve:
                mlflow.log_metric("eval/loss", loss, step=step)
                mlflow.log_metric("train/loss", loss + 0.05, step=step)
    """
)


def log_with_mlflow(uri: str, experiment: str, runs=None, env=None) -> None:
    subprocess.run(
        [sys.executable, "-c", LOG_WITH_MLFLOW, uri, experiment, json.dumps(runs or planted_runs())],
        check=True,
        env=env,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """One SQLite store for the module (creating one costs seconds): the planted runs in experiment
    `ladder`, an experiment `idle` with no runs."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    log_with_mlflow(uri, "ladder")
    import mlflow

    mlflow.MlflowClient(uri).create_experiment("idle")
    return uri


def test_mlflow_sqlite_store_collects_fits_and_keeps_curves(mlflow_db, tmp_path, cli):
    ladder = (mlflow_db, "--experiment", "ladder", "--map", MAP)
    code, out, err = cli("runs", *ladder, "--csv", tmp_path / "r.csv")
    assert code == 0, err
    assert "9 runs in" in out and "9 completed" in out
    check_table(pd.read_csv(tmp_path / "r.csv"))

    table = load_runs(mlflow_db, KEYS, experiments=["ladder"])
    check_table(table)
    curve = curve_of(table, table["run"].iloc[0])
    assert list(curve["step"]) == [100, 200, 300, 400]
    N, D = table["N"].iloc[0], table["D"].iloc[0]
    np.testing.assert_allclose(curve["tokens"], D * curve["step"] / 400)
    np.testing.assert_allclose(curve["flops"], 6 * N * curve["tokens"])

    code, out, err = cli("fit", *ladder, "--json", tmp_path / "f.json")
    assert code == 0, err
    params = json.loads((tmp_path / "f.json").read_text())["params"]
    assert params["E"] == pytest.approx(E, rel=0.02)
    code, out, err = cli("allocate", *ladder, "--approach", "1")
    assert code == 0, err
    assert "loss curves of 9 runs" in out  # the logged histories feed Approach 1


def test_mlflow_bad_input_is_one_error_line(mlflow_db, cli):
    result = cli("runs", mlflow_db, "--map", "N=model/size,D=data.tokens,loss=eval/loss")
    assert_usage_error(result, "model/size", "model/params")  # the keys that exist

    assert_usage_error(cli("runs", mlflow_db, "--map", MAP, "--experiment", "nope"), "'nope'", "ladder")

    assert_usage_error(cli("runs", mlflow_db, "--experiment", "idle"), "'idle' has no runs")

    line = assert_usage_error(cli("fit", "http://127.0.0.1:9", "--map", MAP))
    assert line.startswith("error: http://127.0.0.1:9: MLflow tracking server unreachable")

    # A tracker package that is not installed: the error names the extra to install.
    hide = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from scaling.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    absent = run_process([sys.executable, "-c", hide, "runs", mlflow_db])
    assert_usage_error(absent, "pip install 'scaling[trackers]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: str, folder, log=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """A real `mlflow server` on 127.0.0.1 serving `store` (its process, its URI), once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", store, "--default-artifact-root", str(folder)],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # ~15 s on an idle 2-core machine; minutes on a loaded one
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return server, uri
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("mlflow server did not start") from None
            time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a loaded machine: uvicorn's graceful shutdown can take long
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="module")
def mlflow_server(mlflow_db, tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 serving the module's SQLite store, stopped after the module."""
    server, uri = start_server(mlflow_db, tmp_path_factory.mktemp("server"))
    yield uri
    stop_server(server)


def test_mlflow_tracking_server(mlflow_server, tmp_path, cli):
    """Runs logged over HTTP by the mlflow client and read back over HTTP."""
    logged = planted_runs()[::4]
    log_with_mlflow(mlflow_server, "served", logged)
    served = (mlflow_server, "--map", MAP, "--experiment", "served")
    code, _, err = cli("runs", *served, "--csv", tmp_path / "r.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "r.csv").sort_values("N")
    assert list(zip(table["N"], table["D"], strict=True)) == [(N, D) for _, N, D, _ in logged]
    np.testing.assert_allclose(table["loss"], law(table["N"], table["D"]), rtol=1e-6)


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_an_mlruns_folder_is_read_with_the_file_store_allowed_for_the_read_only(tmp_path, cli, monkeypatch):
    """mlflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE is set: reading sets it for the read
    and changes nothing in the folder."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    mlruns = tmp_path / "mlruns"
    log_with_mlflow(mlruns.as_uri(), "ladder", env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"})
    before = files_of(mlruns)
    code, out, err = cli("runs", mlruns, "--map", MAP, "--csv", tmp_path / "r.csv")
    assert code == 0, err
    check_table(pd.read_csv(tmp_path / "r.csv"))
    code, out, err = cli("runs", tmp_path, "--source", "mlflow", "--map", MAP)  # the folder holding it
    assert code == 0 and "9 runs" in out, err
    code, out, err = cli("fit", mlruns.as_uri(), "--map", MAP)
    assert code == 0 and "fitted on 9 runs" in out, err
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert files_of(mlruns) == before


def test_an_mlflow_store_that_does_not_exist_is_refused_and_nothing_is_created(tmp_path, cli, monkeypatch):
    result = run_process([BIN / "scaling", "runs", "sqlite:///nonexist.db"], cwd=tmp_path)
    assert_usage_error(result, "sqlite:///nonexist.db: no such MLflow store (nonexist.db does not exist)")
    monkeypatch.chdir(tmp_path)
    absent = tmp_path / "sub" / "x.db"
    assert_usage_error(cli("runs", f"sqlite:///{absent}"), f"({absent} does not exist)")
    assert_usage_error(cli("fit", (tmp_path / "mlruns").as_uri()), "no such MLflow store")
    assert_usage_error(cli("runs", tmp_path / "other", "--source", "mlflow"), "no such MLflow store")
    assert_usage_error(cli("runs", "sqlite://"), "in-memory")
    (tmp_path / "notes.txt").write_text("not a database")
    assert_usage_error(cli("runs", "sqlite:///notes.txt"), "notes.txt is not an SQLite database")
    assert_usage_error(cli("runs", tmp_path, "--source", "mlflow"), "not an MLflow store")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


MANY = 60  # runs: reading them over HTTP takes seconds, time to kill the server in the middle


@pytest.mark.slow  # a server of its own to kill: half a minute to start on 2 busy cores
def test_a_server_killed_while_its_runs_are_read_is_one_error_line_within_seconds(mlflow_db, tmp_path):
    import mlflow
    from mlflow.entities import Metric, Param

    store = tmp_path / "many.db"
    shutil.copy(mlflow_db.removeprefix("sqlite:///"), store)
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.create_experiment("many")
    for i, N in enumerate(np.geomspace(1e6, 1e8, MANY)):
        run = client.create_run(experiment, run_name=f"r{i}").info.run_id
        metrics = [Metric("eval/loss", float(law(N, 20 * N * s / 4)), 0, s) for s in (1, 2, 3, 4)]
        params = [Param("model/params", str(N)), Param("data.tokens", str(20 * N))]
        client.log_batch(run, metrics=metrics, params=params)
        client.set_terminated(run)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server, uri = start_server(f"sqlite:///{store}", tmp_path / "artifacts", out)
    reader = subprocess.Popen(
        [str(BIN / "scaling"), "fit", uri, "--experiment", "many", "--map", MAP],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while log.read_text().count("get-history") < 10:  # the reader is in the middle of the runs
            assert reader.poll() is None, reader.communicate()
            time.sleep(0.05)
        os.killpg(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        out, err = reader.communicate(timeout=120)  # mlflow alone: 4 minutes of retries, then a traceback
    finally:
        reader.kill()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    assert time.monotonic() - killed < 30
    line = assert_usage_error(CliResult(reader.returncode, out, err))
    assert line.startswith(f"error: {uri}: MLflow tracking server stopped answering (")


def test_tensorboard_event_folders_from_summary_writer(tmp_path, cli):
    """Event folders as torch's SummaryWriter writes them; N and D from hparams.yaml beside the events
    (Lightning) in some runs and from the hparams plugin (add_hparams) in others."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    root = tmp_path / "tb"
    for i, (name, N, D, curve) in enumerate(planted_runs()):
        folder = root / name / "version_0"
        writer = SummaryWriter(log_dir=str(folder))
        if i % 2:
            (folder / "hparams.yaml").write_text(f"model:\n  params: {N}\ndata:\n  tokens: {D}\n")
            mapping = "N=model.params,D=data.tokens,loss=eval/loss"
        else:
            for summary in hparams({"model.params": N, "data.tokens": D}, {}):
                writer.file_writer.add_summary(summary)
        for step, loss in curve:
            writer.add_scalar("eval/loss", loss, step)
        writer.close()
    table = load_runs(root, {**KEYS, "N": "model.params"})
    check_table(table)
    assert set(table["run"]) == {f"{name}/version_0" for name, *_ in planted_runs()}
    assert len(curve_of(table, table["run"].iloc[0])) == 4
    code, _, err = cli("fit", root, "--map", mapping)
    assert code == 0, err


def test_tensorboard_runs_with_add_hparams_defaults_are_one_run_each(tmp_path):
    """`SummaryWriter.add_hparams` with its default run_name writes the hparams, and its metric_dict as
    single points, into a timestamped subfolder of the run's: one run, not two."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "tb"
    for name, N, D, curve in planted_runs():
        writer = SummaryWriter(log_dir=str(root / name))
        for step, loss in curve:
            writer.add_scalar("eval/loss", loss, step)
        writer.add_hparams({"model.params": N, "data.tokens": D}, {"hparam/final": curve[-1][1]})
        writer.close()
    assert len({p.parent for p in root.rglob("events.out.tfevents.*")}) == 18
    table = load_runs(root, {**KEYS, "N": "model.params"})
    check_table(table)
    assert set(table["run"]) == {name for name, *_ in planted_runs()}
    np.testing.assert_allclose(table["hparam/final"], table["loss"], rtol=1e-6)  # the subfolder's metric
    assert len(curve_of(table, table["run"].iloc[0])) == 4


def write_wandb_export(export: Path) -> None:
    """The runs table exported from the W&B UI (Name, State, ..., config and summary columns) for the
    planted runs and one crashed run, and each planted run's history as `run.history()` writes it to CSV."""
    (export / "history").mkdir(parents=True)
    rows = []
    for name, N, D, curve in planted_runs():
        rows.append({"Name": name, "State": "finished", "Notes": "-", "User": "me", "Tags": "",
                     "Created": "2026-11-30T10:00:00.000Z", "Runtime": 100, "Sweep": "",
                     "model/params": N, "data.tokens": D, "eval/loss": curve[-1][1]})  # fmt: skip
        steps, losses = zip(*curve, strict=True)
        history = pd.DataFrame({"_step": steps, "_runtime": 1.0, "eval/loss": losses})
        history.to_csv(export / "history" / f"{name}.csv", index=False)
    rows.append({"Name": "crashed-run", "State": "crashed", "model/params": 1e6, "data.tokens": 1e6,
                 "eval/loss": 9.0})  # fmt: skip
    pd.DataFrame(rows).to_csv(export / "runs.csv", index=False)


def test_wandb_export_as_the_ui_writes_it(tmp_path, cli):
    export = tmp_path / "wandb-export"
    write_wandb_export(export)
    with pytest.warns(UserWarning, match="status failed: crashed-run"):
        table = load_runs(export, KEYS)
    check_table(table)
    assert list(curve_of(table, table["run"].iloc[0])["step"]) == [100, 200, 300, 400]
    # The runs table alone (no history) is a run table too.
    code, out, err = cli("runs", export / "runs.csv", "--map", MAP)
    assert code == 0 and "10 runs" in out, err


def test_damaged_wandb_exports_are_read_or_named(tmp_path, cli):
    """A runs.csv saved again by a spreadsheet (a UTF-8 byte-order mark), empty and malformed histories:
    read, the runs without a curve named; a ragged row in runs.csv: one error line naming the file."""
    export = tmp_path / "wandb-export"
    write_wandb_export(export)
    runs_csv = export / "runs.csv"
    runs_csv.write_bytes(b"\xef\xbb\xbf" + runs_csv.read_bytes())
    (empty, *_), (malformed, *_) = planted_runs()[:2]
    (export / "history" / f"{empty}.csv").write_text("")
    (export / "history" / f"{malformed}.csv").write_text("_step,eval/loss\n100,3.0\n200,2.9,7,8\n")
    assert detect(export) == detect(runs_csv) == "wandb"
    with pytest.warns(UserWarning) as caught:
        table = load_runs(export, KEYS)
    check_table(table)
    notes = [str(w.message) for w in caught]
    assert f"{export / 'history' / empty}.csv: empty file (expected a W&B run history" in " ".join(notes)
    assert any(n.startswith(f"{export / 'history' / malformed}.csv: not a readable CSV") for n in notes)
    assert sum(f"run {name} read without its curve" in " ".join(notes) for name in (empty, malformed)) == 2
    assert curve_of(table, empty) is None and curve_of(table, malformed) is None
    assert len(table.attrs["curves"]) == 7  # the other runs keep theirs

    with runs_csv.open("a") as file:
        file.write("ragged-run,finished,-,me,,2026,100,,1e6,1e6,3.0,extra\n")
    result = cli("runs", export, "--map", MAP)
    assert_usage_error(result, f"{runs_csv}: not a readable CSV", "Expected 11 fields")


def test_a_run_without_a_mapped_key_is_excluded_by_name(mlflow_db):
    import mlflow

    client = mlflow.MlflowClient(mlflow_db)
    experiment = client.create_experiment("partial")
    for name, N, D, curve in planted_runs():
        run = client.create_run(experiment, run_name=name).info.run_id
        client.log_param(run, "model/params", N)
        client.log_param(run, "data.tokens", D)
        client.log_metric(run, "eval/loss", curve[-1][1], step=curve[-1][0])
        client.set_terminated(run)
    unsized = client.create_run(experiment, run_name="no-size").info.run_id
    client.log_metric(unsized, "eval/loss", 3.0)
    client.set_terminated(unsized)
    with pytest.warns(UserWarning, match=r"excluded 1 run\(s\) with missing.*: no-size"):
        table = load_runs(mlflow_db, KEYS, experiments=["partial"])
    check_table(table)


SWEEP = ["model=tiny_10k", "train.tokens=3e4", "train.batch_size=8", "train.evals=3",
         "train.eval_tokens=2048", "train.threads=1", "train.seed=0,1,2"]


@pytest.fixture(scope="module")
def logged_sweep(tmp_path_factory):
    """Three tiny runs trained by scaling-train with all three trackers on (MLflow to SQLite, W&B offline)."""
    folder = tmp_path_factory.mktemp("sweep")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
           "MLFLOW_EXPERIMENT_NAME": "tiny", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run(
        [str(BIN / "scaling-train"), "-m", *SWEEP, "train.loggers=[tensorboard,mlflow,wandb]",
         f"hydra.sweep.dir={folder / 'runs'}"],
        cwd=folder, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, env


def test_a_logged_sweep_reads_back_the_same_table_from_every_tracker(logged_sweep):
    folder, env = logged_sweep
    columns = ["N", "D", "C", "loss", "U"]
    ours = collect(folder / "runs").sort_values("loss")[columns].reset_index(drop=True)
    assert len(ours) == 3
    for source, tracker in (
        (env["MLFLOW_TRACKING_URI"], "mlflow"),
        (folder / "runs", "tensorboard"),
        (folder / "runs", "wandb"),
    ):
        experiments = ["tiny"] if tracker == "mlflow" else None
        table = load_runs(source, tracker=tracker, experiments=experiments)  # our own keys: no --map
        got = table.sort_values("loss")[columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ours, check_dtype=False, rtol=1e-6)
        curve = curve_of(table, table["run"].iloc[0])
        assert len(curve) == 3 and curve["tokens"].iloc[-1] == table["D"].iloc[0]
        assert set(table["status"]) == {"completed"}


def test_our_run_folders_stay_ours_when_trackers_logged_inside_them(logged_sweep):
    # scaling-train's TensorBoard events and W&B files lie inside the run folders: the sweep folder and each
    # run folder are still read as ours (summary.json), a tracker only when asked for by name
    folder, _ = logged_sweep
    run = next((folder / "runs").rglob("summary.json")).parent
    assert any(run.glob("events.out.tfevents.*")) and (run / "wandb").is_dir()
    assert detect(folder / "runs") is None and detect(run) is None
    assert {"wall_s", "N_total", "train_loss"} <= set(collect(folder / "runs").columns)  # summary.json's


def test_a_cut_short_wandb_log_is_read_up_to_its_last_whole_record(logged_sweep, tmp_path):
    """A .wandb log as a run killed while writing leaves it: the run up to its last whole record, named in
    a warning; a log cut inside its header: skipped with a warning; one .wandb file: read as its run."""
    folder, _ = logged_sweep
    logs = sorted({log.name: log for log in (folder / "runs").rglob("run-*.wandb")}.values())
    copies = []
    for i, log in enumerate(logs):
        copy = tmp_path / "wandb" / f"offline-run-{i}" / log.name
        copy.parent.mkdir(parents=True)
        copy.write_bytes(log.read_bytes())
        copies.append(copy)
    cut, header_only, whole = copies
    cut.write_bytes(cut.read_bytes()[:-3])  # inside its last record (the exit record's neighbourhood)
    header_only.write_bytes(header_only.read_bytes()[:5])
    with pytest.warns(UserWarning) as caught:
        table = collect(tmp_path, tracker="wandb")
    notes = [str(w.message) for w in caught]
    killed = f"{cut}: ends inside a record (as a run killed while writing leaves it); run "
    assert any(n.startswith(killed) for n in notes)
    assert f"{header_only}: no records (a run killed before it wrote any), skipped" in notes
    assert len(table) == 2 and table["loss"].notna().all()
    assert detect(whole) == "wandb"
    single = collect(whole)
    assert len(single) == 1 and single["status"].iloc[0] == "completed"


def test_a_resumed_run_continues_its_tracker_run_and_a_failing_tracker_never_fails_training(
    logged_sweep, tmp_path
):
    folder, env = logged_sweep
    run = next((folder / "runs").iterdir())
    ids = json.loads((run / "trackers.json").read_text())
    assert set(ids) == {"tensorboard", "mlflow", "wandb"}
    # Relaunching the finished sweep trains nothing and opens no new tracker runs.
    again = subprocess.run(
        [str(BIN / "scaling-train"), "-m", *SWEEP, "train.loggers=[tensorboard,mlflow,wandb]",
         f"hydra.sweep.dir={folder / 'runs'}"],
        cwd=folder, env=env, capture_output=True, text=True,
    )
    assert again.returncode == 0 and "nothing to train" in again.stdout + again.stderr
    assert len(collect(env["MLFLOW_TRACKING_URI"], experiments=["tiny"])) == 3

    # A tracking server that is down: one health check, one warning, and the run trains at once (mlflow's
    # client alone retried for 4 min 41 s first, printing 7 urllib3 retry lines).
    down = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    done = subprocess.run(
        [str(BIN / "scaling-train"), *SWEEP[:-1], "train.loggers=[tensorboard,mlflow]",
         f"hydra.run.dir={tmp_path}/r"],
        cwd=tmp_path, env=down, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "completed"
    assert done.stderr.count("mlflow logging stopped") == 1 and "Retrying" not in done.stderr
    assert f"tracking server {down['MLFLOW_TRACKING_URI']} unreachable" in done.stderr
    assert any((tmp_path / "r").glob("events.out.tfevents.*"))  # the other tracker logs on


def test_resume_after_sigkill_logs_to_the_same_mlflow_run(logged_sweep, tmp_path):
    _, sweep_env = logged_sweep
    uri = sweep_env["MLFLOW_TRACKING_URI"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "resume"}
    args = [str(BIN / "scaling-train"), "model=tiny_10k", "train.tokens=2e5", "train.batch_size=8",
            "train.evals=12", "train.eval_tokens=2048", "train.threads=1", "train.loggers=[mlflow]",
            f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    first_id = json.loads((tmp_path / "run" / "trackers.json").read_text())["mlflow"]
    subprocess.run(args, cwd=tmp_path, env=env, check=True, capture_output=True)
    table = collect(uri, experiments=["resume"])
    assert len(table) == 1 and table["status"].iloc[0] == "completed"
    assert json.loads((tmp_path / "run" / "trackers.json").read_text())["mlflow"] == first_id
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert table["loss"].iloc[0] == pytest.approx(summary["val_loss"])
    curve = curve_of(load_runs(uri, experiments=["resume"]), table["run"].iloc[0])
    assert list(curve["step"]) == sorted(set(curve["step"]))  # re-logged steps counted once
    assert curve["step"].iloc[-1] == summary["steps"]
