"""Faults users make on the analysis side (issue 12): unreadable and symlinked run folders, a shared or
tampered data cache, full disks and read-only folders, killed reports, a 100,000-row table.

Permission tests run their commands as another user (setpriv to nobody when the suite runs as root,
whose file-access override would hide every permission problem); full-disk and read-only-file-system
tests mount a small tmpfs in a private mount namespace (unshare), which vanishes with the command."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import BIN, assert_usage_error, run_process
from test_plots import law_table

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting import laws, solvers
from scaling.fitting.procedure import fit
from scaling.reference import HOFFMANN_2022
from scaling.runs.table import collect_runs, load_runs
from scaling.training.data import prepare_text, synthetic

ROOT = Path(__file__).resolve().parents[1]
CHINCHILLA = ROOT / "data" / "chinchilla_epoch_fig4.csv"


NOBODY = 65534  # uid and gid of nobody / nogroup


def as_other_user(shared: Path, command: list, **env_vars: str) -> subprocess.CompletedProcess:
    """Run `command` (text output captured) as a user without root's file-access override, in the
    environment of `user_env(shared)` updated with `env_vars`."""
    env = {**user_env(shared), **env_vars}
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root for a permission test")
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return within_reach([ROOT, Path(sys.prefix), Path(sys.base_prefix), shared], command, env)


def private_ancestor(path: Path) -> Path | None:
    """The outermost folder on the way to `path` that other users cannot pass (no o+x), if any."""
    for folder in (*reversed(path.parents), path):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


REACH_FAILED = 97  # the exit status of `within_reach`'s script when it cannot mount


def within_reach(paths: list[Path], command: list, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `command` (text output captured) where another user can reach `paths` (the clone, its venv,
    the interpreter, the shared folder) though a folder above them is private to its owner (a clone in a
    `mktemp -d` folder or in root's home, mode 0700). In a private mount namespace, each such folder is
    covered by a tmpfs that holds only those paths, bind-mounted at their own places, so their absolute
    paths (the venv's shebangs and editable install) still hold; nothing else of the private folder
    shows, and nothing changes outside the command."""
    paths = sorted({path.resolve() for path in paths})
    paths = [p for p in paths if not any(q != p and q in p.parents for q in paths)]  # the outermost ones
    covers: dict[Path, list[Path]] = {}
    for path in paths:
        folder = private_ancestor(path)
        if folder == path:
            pytest.skip(f"{path} itself is private to its owner: another user cannot run the tests' commands")
        if folder is not None:
            covers.setdefault(folder, []).append(path)
    if not covers:
        return subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env)
    if shutil.which("unshare") is None:
        pytest.skip(f"needs unshare to let another user through {', '.join(map(str, covers))}")
    stages = [Path(tempfile.mkdtemp(prefix="scaling-reach-")) for _ in covers]
    mounts = []
    for stage, (folder, inside) in zip(stages, covers.items(), strict=True):
        mounts.append(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(stage))}")
        for path in inside:
            place = shlex.quote(str(stage / path.relative_to(folder)))
            mounts += [f"mkdir -p {place}", f"mount --bind {shlex.quote(str(path))} {place}"]
        mounts.append(f"mount --move {shlex.quote(str(stage))} {shlex.quote(str(folder))}")
    script = f'umask 022; {{ {" && ".join(mounts)}; }} || exit {REACH_FAILED}; exec "$@"'
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *map(str, command)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
    finally:
        for stage in stages:
            stage.rmdir()
    if done.returncode == REACH_FAILED:
        private = ", ".join(map(str, covers))
        pytest.skip(f"no mount namespace to let another user through {private}: {done.stderr.strip()}")
    return done


@pytest.fixture
def shared(tmp_path_factory) -> Path:
    """A folder another user can reach (pytest's own temporary folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="scaling-shared-"))
    folder.chmod(0o755)
    (folder / "home").mkdir()
    if os.geteuid() == 0:
        os.chown(folder / "home", NOBODY, NOBODY)
    yield folder
    subprocess.run(["chmod", "-R", "u+rwX", folder], check=False)
    shutil.rmtree(folder)


def user_env(shared: Path) -> dict[str, str]:
    """The environment of the other user: a home of its own (matplotlib writes its cache there)."""
    home = shared / "home"
    home_vars = {"HOME": str(home), "MPLCONFIGDIR": str(home / "mpl"), "PYTHONDONTWRITEBYTECODE": "1"}
    return {**os.environ, **home_vars}


def write_run(folder: Path, N: float, D: float) -> Path:
    """A completed run folder whose loss follows Hoffmann et al.'s law."""
    folder.mkdir(parents=True)
    loss = float(laws.get_law("chinchilla").predict(HOFFMANN_2022, N=N, D=D)[0])
    summary = {"status": "completed", "n_params": N, "tokens": D, "flops": 6 * N * D, "val_loss": loss}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text("train:\n  lr: 0.001\n")
    return folder


def write_sweep(root: Path, count: int) -> list[Path]:
    sizes = np.geomspace(1e7, 1e9, count)
    return [write_run(root / f"run{i:02d}", N, 20 * N * (1 + i % 3)) for i, N in enumerate(sizes)]


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


# ---- item 4: nothing silently skipped ----------------------------------------------------------------
def test_unreadable_run_folders_are_named_and_the_rest_is_fitted(shared):
    runs = write_sweep(shared / "sweep", 15)
    for folder in runs[:6]:
        folder.chmod(0o000)  # another user's run: cannot even be listed
    (runs[6] / "summary.json").chmod(0o000)  # a listable run whose summary cannot be read
    done = as_other_user(shared, [BIN / "scaling", "fit", shared / "sweep"])
    assert done.returncode == 0, done.stderr
    assert "fitted on 8 runs" in done.stdout
    lines = [line for line in done.stderr.splitlines() if "unreadable" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: 7 unreadable folder(s) or run file(s)")
    named = [str(folder) for folder in runs[:7] if str(folder) in lines[0]]
    assert len(named) == 5 and lines[0].endswith("and 2 more")  # shortened: five names, then a count
    assert "Permission denied" in lines[0]
    listing = as_other_user(shared, [BIN / "scaling", "runs", shared / "sweep"])
    assert listing.returncode == 0 and "warning: 7 unreadable" in listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.endswith(str(runs[6])))
    assert row.split()[0] == "failed"  # listed, and marked as not usable


def test_symlinked_run_folders_are_followed_once_without_loops(tmp_path):
    root = tmp_path / "sweep"
    write_run(root / "a", 1e7, 2e8)
    write_run(root / "b", 1e8, 2e9)
    write_run(root / "nested" / "c", 3e8, 6e9)
    outside = write_run(tmp_path / "elsewhere" / "x", 1e9, 2e10)
    (root / "linked").symlink_to(outside)  # a run kept elsewhere: followed
    (root / "again").symlink_to(root / "a")  # a second way to a run already collected
    (root / "loop").symlink_to(root)  # a loop to the sweep itself
    (root / "nested" / "up").symlink_to(root / "nested")  # a loop one level down
    (root / "gone").symlink_to(tmp_path / "deleted")  # dangling
    (outside / "back").symlink_to(root)  # a loop from the linked run back into the sweep
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = collect_runs(root)
    assert sorted(table["run"]) == sorted(str(p) for p in (root / "a", root / "b", root / "nested" / "c",
                                                            root / "linked"))  # fmt: skip
    notes = [str(w.message) for w in caught if issubclass(w.category, ScalingWarning)]
    followed = [n for n in notes if "followed:" in n and "not followed" not in n]
    assert followed == [f"1 symlinked folder(s) followed: {root / 'linked'} -> {outside}"]
    skipped = [n for n in notes if "not followed" in n]
    assert len(skipped) == 1 and skipped[0].startswith("5 symlinked folder(s) not followed: ")
    for link in ("again", "loop", "nested/up"):
        assert f"{root / link} (its folder is already collected)" in skipped[0]
    assert f"{root / 'gone'} (dangling)" in skipped[0] and f"{root / 'linked' / 'back'}" in skipped[0]


# ---- item 5: the data cache --------------------------------------------------------------------------
SMALL = {"tokens": 300_000, "vocab_size": 12, "order": 2, "seed": 7}  # a synthetic entry built in ~1 s


def test_cache_entry_of_another_source_is_refused_and_the_advice_is_to_delete_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE", str(tmp_path / "cache"))
    entry = synthetic(**SMALL).folder
    text = tmp_path / "a.txt"
    text.write_text("another text entirely. " * 400)
    other = prepare_text([text], tmp_path / "other").folder
    # the advice the old error gave; now refused outright
    refused = assert_usage_error(run_process([BIN / "scaling", "prepare", text, "--out", entry]))
    assert refused.startswith(f"error: --out {entry} is inside the data cache")
    for name in ("train.bin", "val.bin", "meta.json"):  # what that advice, or a careless copy, did
        shutil.copy(other / name, entry / name)
    with pytest.raises(UsageError) as caught:
        synthetic(**SMALL)
    message = str(caught.value)
    assert f"data cache entry {entry} holds 'bytes of a.txt'" in message
    assert f"delete the entry (rm -r {entry}); the next run rebuilds it" in message
    assert "prepare" not in message and "\n" not in message
    shutil.rmtree(entry)  # the advice, followed
    assert synthetic(**SMALL).meta["source"].startswith("synthetic")
    with open(entry / "val.bin", "r+b") as f:
        f.truncate(10)  # a damaged entry: the same safe advice
    with pytest.raises(UsageError, match=r"corrupt\); delete the entry \(rm -r ") as caught:
        synthetic(**SMALL)
    assert "prepare" not in str(caught.value)


def test_a_shared_cache_serves_a_second_user_as_the_umask_allows(shared):
    cache = str(shared / "cache")
    env = {**user_env(shared), "SCALING_CACHE": cache}
    code = (
        "import sys; from scaling.training.data import synthetic; from scaling.errors import UsageError\n"
        "try: print(synthetic(**{params}).meta['train_sha256'])\n"
        "except UsageError as exc: sys.exit(f'error: {{exc}}')"
    )

    def build(umask: int, **params) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", code.format(params={**SMALL, **params})]
        umask_of = {"preexec_fn": lambda: os.umask(umask)}
        return subprocess.run(command, capture_output=True, text=True, env=env, **umask_of)

    first = build(0o022)
    assert first.returncode == 0, first.stderr
    (entry,) = (shared / "cache").iterdir()
    assert entry.stat().st_mode & 0o777 == 0o755 == (shared / "cache").stat().st_mode & 0o777
    assert {p.stat().st_mode & 0o777 for p in entry.iterdir()} == {0o644}
    second = as_other_user(shared, [sys.executable, "-c", code.format(params=SMALL)], SCALING_CACHE=cache)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout  # the second user trains on the first user's entry

    private = build(0o077, seed=8)  # a user whose umask keeps files to itself
    assert private.returncode == 0, private.stderr
    denied = as_other_user(
        shared, [sys.executable, "-c", code.format(params={**SMALL, "seed": 8})], SCALING_CACHE=cache
    )
    assert denied.returncode == 1 and denied.stderr.count("\n") == 1
    assert denied.stderr.startswith("error: cannot read data folder ")
    assert "(Permission denied)" in denied.stderr
    new = as_other_user(
        shared, [sys.executable, "-c", code.format(params={**SMALL, "seed": 9})], SCALING_CACHE=cache
    )
    assert new.returncode == 1 and new.stderr.count("\n") == 1  # an entry to build in a cache not its own
    assert new.stderr.startswith(f"error: cannot write the data cache {shared / 'cache'} (Permission denied)")
    assert "set SCALING_CACHE to a folder you can write" in new.stderr


# ---- item 7: full disk, read-only folder -------------------------------------------------------------
PREVIOUS = {
    "fit.json": b'{"previous": "fit"}\n',
    "runs.csv": b"previous,table\n",
    "report/report.md": b"# previous report\n",
    "report/figures/a.png": b"previous figure",
}
DISK_SCRIPT = r"""
set -u
mount -t tmpfs -o size=1m tmpfs "$DISK" || exit 97
cp -a "$SEED"/. "$DISK"/
if [ "$MODE" = full ]; then cat /dev/zero > "$DISK/fill" 2>/dev/null
else mount -o remount,ro "$DISK" || exit 97; fi
run() { name=$1; shift; "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; echo $? > "$OUT/$name.rc"; }
run fit "$BIN/scaling" fit "$CSV" --json "$DISK/fit.json"
run runs "$BIN/scaling" runs "$SWEEP" --csv "$DISK/runs.csv"
run prepare "$BIN/scaling" prepare "$TEXT" --out "$DISK/data"
run report "$BIN/scaling" report "$CSV" --out "$DISK/report" --bootstrap 0 --dpi 150
rm -f "$DISK/fill"
mkdir "$OUT/after" && cp -a "$DISK"/. "$OUT/after"/
"""


@pytest.mark.parametrize("mode", ["full", "read-only"])
def test_full_disk_or_read_only_folder_is_one_error_naming_the_target_and_loses_nothing(tmp_path, mode):
    """Each analysis command writing onto a full disk or a read-only file system (a tmpfs in a private
    mount namespace): exit 2, one `error:` line naming the file or folder asked for, the previous
    outputs byte for byte as they were, no temp file left."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to mount a small file system")
    seed, disk, out = tmp_path / "seed", tmp_path / "disk", tmp_path / "out"
    for name, data in PREVIOUS.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_bytes(data)
    disk.mkdir()
    out.mkdir()
    write_sweep(tmp_path / "sweep", 6)
    law_table().to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "text.txt").write_text("words on a full disk. " * 200)
    paths = {"DISK": disk, "SEED": seed, "OUT": out, "BIN": BIN, "CSV": tmp_path / "runs.csv",
             "SWEEP": tmp_path / "sweep", "TEXT": tmp_path / "text.txt"}  # fmt: skip
    env = {**os.environ, "MODE": mode, **{k: str(v) for k, v in paths.items()}}
    namespace = ["unshare", "--mount", "--propagation", "private"]
    done = subprocess.run([*namespace, "bash", "-c", DISK_SCRIPT], env=env)
    if done.returncode == 97 or (done.returncode != 0 and not (out / "fit.rc").exists()):
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    assert done.returncode == 0
    why = "No space left on device" if mode == "full" else "Read-only file system"
    expected = {"fit": f"error: {disk / 'fit.json'}: {why}", "runs": f"error: {disk / 'runs.csv'}: {why}",
                "prepare": f"error: {disk / 'data'}"}  # fmt: skip
    if mode == "full":  # fails at its first figure, written into its hidden staging folder
        expected["report"] = f"error: {disk / 'report'}: {why}"
    else:  # refused before any work: the folder would be replaced as a whole
        expected["report"] = f"error: {disk / 'report'}: the report folder cannot be written"
    for name, start in expected.items():
        err = (out / f"{name}.err").read_text()
        assert (out / f"{name}.rc").read_text().strip() == "2", (name, err)
        lines = [line for line in err.splitlines() if not line.startswith("warning:")]  # the 175B caveat
        assert len(lines) == 1 and lines[0].startswith(start), (name, err)
    after = out / "after"
    for name, data in PREVIOUS.items():
        assert (after / name).read_bytes() == data
    assert [p.name for p in after.rglob(".*")] == []  # no temp file, no staging folder


# ---- item 8: leftovers of a killed report, a read-only report folder --------------------------------
def previous_report(folder: Path) -> dict[str, bytes]:
    for name, data in PREVIOUS.items():
        if name.startswith("report/"):
            path = folder / name.removeprefix("report/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return tree(folder)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sigkilled_report_leaves_a_staging_folder_that_the_next_run_cleans(tmp_path, cli):
    csv = tmp_path / "runs.csv"
    law_table().to_csv(csv, index=False)
    out = tmp_path / "reports" / "r"
    before = previous_report(out)
    command = [BIN / "scaling", "report", csv, "--out", out, "--bootstrap", "0", "--dpi", "150"]
    writer = subprocess.Popen([str(c) for c in command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(out.parent.glob(".r.*.tmp")) and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)  # while it writes its figures into the staging folder
    writer.wait()
    (leftover,) = out.parent.glob(".r.*.tmp")
    assert tree(out) == before

    # the writer died between its two renames: the previous report moved aside, no report in place
    tag = "abcd1234"
    (out.parent / f".r.{tag}.tmp").mkdir()
    out.rename(out.parent / f".r.{tag}.old")
    # a live writer's staging folder (its lock held here) must survive the cleaning
    live = out.parent / ".r.live0000.tmp"
    live.mkdir()
    held = os.open(live, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        bad = tmp_path / "bad.csv"
        bad.write_text("size,loss\n1e7,3.0\n")
        result = cli("report", bad, "--out", out)  # the next run, whatever its input
    finally:
        os.close(held)
    assert_usage_error(result, "needs columns")
    assert tree(out) == before  # the previous report is back in place
    assert sorted(p.name for p in out.parent.iterdir()) == [".r.live0000.tmp", "r"]
    assert not leftover.exists()


def test_report_onto_a_read_only_report_folder_is_refused_and_the_old_report_stays(shared):
    csv = shared / "runs.csv"
    law_table().to_csv(csv, index=False)
    parent = shared / "reports"
    parent.mkdir()
    out = parent / "r"
    before = previous_report(out)
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", parent], check=True)
    (out / "figures").chmod(0o555)  # the user's own report, write-protected (chmod a-w figures)
    done = as_other_user(shared, [BIN / "scaling", "report", csv, "--out", out])
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {out}: the report folder cannot be written ({out / 'figures'} is ")
    assert tree(out) == before
    assert [p.name for p in parent.iterdir()] == ["r"]  # nothing hidden beside it


# ---- item 9: fit memory linear and small ------------------------------------------------------------
def test_fit_of_100k_rows_runs_under_a_1_gib_address_space_cap(tmp_path):
    """Before, the start grid was evaluated over all rows at once: 8.6 GB for 100,000 rows."""
    bench = _bench("fit_memory")
    csv = tmp_path / "curves.csv"
    bench.law_rows(100_000).to_csv(csv, index=False)
    cap = 1 << 30

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out = tmp_path / "fit.json"
    done = subprocess.run(
        [BIN / "scaling", "fit", csv, "--json", out], capture_output=True, text=True, preexec_fn=limit
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["n_points"] == 100_000 and result["converged"]
    for name, value in HOFFMANN_2022.items():  # 100,000 points with 1 % noise pin the law down
        assert result["params"][name] == pytest.approx(value, rel=0.02)


def test_chunked_sampled_search_reaches_the_optimum_of_the_full_search(monkeypatch):
    """The search on a sample of the runs, its starts in many small chunks, ends where the search on
    every run in one chunk ends (Chinchilla's runs; analysis/chinchilla_fit.py checks the published
    numbers)."""
    table = load_runs(CHINCHILLA, {"N": "Model Size", "C": "Training FLOP"}, drop_top_loss=5)
    full = fit(table)
    monkeypatch.setattr(laws, "CHUNK_ELEMENTS", 5_000)  # 20 starts per chunk, 45 chunks
    monkeypatch.setattr(solvers, "SEARCH_ROWS", 60)  # the search sees a quarter of the runs
    sampled = fit(table)
    assert sampled.converged and full.converged
    assert sampled.objective == pytest.approx(full.objective, rel=1e-10)
    for name, value in full.params.items():
        assert sampled.params[name] == pytest.approx(value, rel=1e-6)
    assert not np.isclose(full.objective, fit(table.iloc[:60]).objective)  # the sample alone differs
