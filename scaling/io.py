"""Crash-safe file writing and tolerant reading, shared by training, run collection and reports, and
the checks of the paths a command will write.

Every file a reader may look at while it is written goes through `atomic_write_*` (temp file in the same
folder, fsync, rename, fsync of the folder), so a reader sees the old file or the new one, never half.
`metrics.jsonl` is append-only; its reader tolerates a torn last line from a killed writer. A folder
written as a whole (a report) is built beside its target and swapped in (`new_staging`, `swap_in`), so a
reader sees the old folder or the new one; what a killed writer left, the next one cleans up
(`clean_leftovers`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from scaling.errors import UsageError
from scaling.resources import config_dir

# mkstemp creates files readable by their owner only; written files get the usual umask-derived mode.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
FOLDER_MODE = 0o777 & ~_UMASK  # for folders made private by mkdtemp, once they are complete


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def error_at(exc: OSError, path: str | os.PathLike) -> OSError:
    """`exc` (a full disk, no permission, a read-only file system) naming `path`, the file or folder the
    user asked for, instead of a temp file inside it or nothing at all."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, os.fspath(path))  # OSError picks the subclass from errno


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file. A failure (full disk, read-only
    folder) raises an OSError naming `path` and leaves the previous file as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error_at(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise error_at(exc, path) from None
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    # A file name that is not UTF-8 (a run folder named in another encoding) reaches text as surrogates;
    # written as \udcff escapes, the file stays valid UTF-8 for every reader.
    atomic_write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it (one write call, so a kill tears at most this line)."""
    line = (json.dumps(record, allow_nan=True) + "\n").encode("utf-8")
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON document at `path`; UsageError naming `what` was expected when it is missing or unreadable."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not {what} ({exc})") from None


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the complete records of a JSON-lines file; a torn (unterminated) last line is skipped."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete = lines[:-1]  # whatever follows the last newline was never finished
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else exc
            raise ValueError(f"{path}: line {number} is not valid JSON ({why})") from exc


# ---- folders replaced as a whole -------------------------------------------------------------------
def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace `out_dir` by the finished `staging` folder (two renames on one file system). The previous
    folder waits as the `.old` twin of `staging` between the renames, where `clean_leftovers` finds it."""
    os.chmod(staging, FOLDER_MODE)  # mkdtemp makes it private; a report is for reading
    if out_dir.exists():
        old = staging.with_suffix(".old")
        out_dir.rename(old)
        try:
            staging.rename(out_dir)
        except BaseException:
            old.rename(out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)


# A folder NAME is built in `.NAME.XXXXXXXX.tmp` beside it (XXXXXXXX from mkdtemp), locked by its writer.
_LEFTOVER = r"\.{name}\.([a-z0-9_]{{8}})\.(tmp|old)"


def new_staging(parent: Path, name: str) -> tuple[Path, int]:
    """A fresh staging folder for the folder NAME (a report) and a descriptor holding its lock (close it
    when done)."""
    while True:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
        fd = os.open(staging, os.O_RDONLY)
        with contextlib.suppress(OSError):  # a file system without locks: no leftover there looks stale
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(staging)):
                return staging, fd
        except FileNotFoundError:
            pass
        os.close(fd)  # another run's cleaning took it for a leftover before it was locked: take another


def _try_lock(folder: Path) -> int | None:
    """A descriptor holding `folder`'s lock, or None when a live writer holds it (or it cannot be told)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def clean_leftovers(parent: Path, name: str) -> None:
    """Remove what killed writers of the folder NAME (a report) left in `parent`: staging folders (`.tmp`)
    and previous versions moved aside (`.old`). A writer killed between its two renames left NAME missing:
    its `.old` goes back to NAME, so nothing is ever lost. Folders a live writer holds are left alone."""
    pattern = re.compile(_LEFTOVER.format(name=re.escape(name)))
    try:
        tags = sorted({m.group(1) for e in os.scandir(parent) if (m := pattern.fullmatch(e.name))})
    except OSError:
        return
    for tag in tags:
        staging, old, out = parent / f".{name}.{tag}.tmp", parent / f".{name}.{tag}.old", parent / name
        lock = _try_lock(staging)
        if lock is None and staging.exists():
            continue  # its writer is alive
        try:
            if old.is_dir() and not out.exists():
                old.rename(out)  # its writer died between the two renames: the old report goes back
            else:
                shutil.rmtree(old, ignore_errors=True)  # the new report is in place: this is the previous
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            if lock is not None:
                os.close(lock)


def read_only_folder(out_dir: Path) -> Path | None:
    """The first folder of `out_dir` (itself or a folder in it, e.g. a report's figures/) this user cannot
    write, or None. Replacing the folder removes its folders; one that cannot be emptied would stay behind,
    hidden."""
    if not out_dir.is_dir():
        return None
    for folder in (out_dir, *(p for p in out_dir.iterdir() if p.is_dir() and not p.is_symlink())):
        if not os.access(folder, os.W_OK | os.X_OK):
            return folder
    return None


# ---- paths a command will write: checked before anything is computed -----------------------------------
_SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def sweep_name_of(out: str | Path) -> str:
    """NAME of an `out` path DIR/sweep/NAME.yaml (Hydra's --config-dir DIR finds it as +sweep=NAME)."""
    out = Path(out)
    if out.suffix != ".yaml" or out.parent.name != "sweep" or not _SWEEP_NAME.match(out.stem):
        raise UsageError(
            f"`out` {str(out)[:200]!r} must be DIR/sweep/NAME.yaml (NAME of letters, digits, - and _), so "
            "that `scaling-train --config-dir DIR -m +sweep=NAME` runs it"
        )
    shipped = sorted(p.stem for p in (config_dir() / "sweep").glob("*.yaml"))
    if out.stem in shipped:  # Hydra finds the shipped sweep first: +sweep=NAME would never run this one
        raise UsageError(
            f"`out` {str(out)[:200]!r}: {out.stem!r} is a sweep that ships with scaling, which "
            f"`scaling-train -m +sweep={out.stem}` runs instead; choose another NAME (shipped: "
            f"{', '.join(shipped)})"
        )
    return out.stem


def check_writable(path: str | Path, what: str) -> None:
    """UsageError unless `path` can be written: not a folder, and its nearest existing parent a writable
    folder. Checked before anything is computed or written, so that bad input leaves no partial output."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")
    check_creatable(path, what)


def check_creatable(path: str | Path, what: str) -> None:
    """UsageError unless `path` (a file or a folder) can be created in its nearest existing parent: a
    writable folder, not a file in the way (`--out afile/sub`)."""
    path = Path(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{what} {path}: cannot create it, {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot create it in {parent} (not a writable folder)")


# ---- result documents ------------------------------------------------------------------------------------
def check_format(obj: Any, expected: str, what: str) -> Mapping[str, Any]:
    """`obj` if it is a JSON object of the document `expected` ("scaling.plan/1"); UsageError naming `what`
    otherwise. A document without a "format" key is read as the current version (files written before the
    key existed)."""
    if not isinstance(obj, Mapping):
        raise UsageError(f"not {what}: expected a JSON object")
    found = obj.get("format", expected)
    if found != expected:
        raise UsageError(f"not {what}: format {found!r}, expected {expected!r}")
    return obj
