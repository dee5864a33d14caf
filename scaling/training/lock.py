"""One writer per run folder: an exclusive `flock(2)` on `RUN/.lock`, held for the whole run.

The lock is taken before the trainer reads the folder's summary or checkpoint and released when the
process ends, however it ends: the kernel drops a flock when its file is closed, so a killed process never
leaves a stale lock. The file itself stays (deleting it would let two processes lock two different files);
while held it names its holder (pid, host, start time, config hash), so that a second launch can say who
trains the run and refuse at once when it would train another config into the same folder.

What this relies on: flock is exclusive between processes of one host on every local file system. On
NFS, Linux emulates flock with POSIX byte-range locks (kernel 2.6.12 and later), so it is exclusive across
hosts too, unless the client mounts with `local_lock=flock` or `local_lock=all`; a lock of a host that
crashes is released when the server's lease expires (NFSv4: about 90 s). Lustre needs the `flock` mount
option (`localflock` only locks within one host). A lock file found replaced (renamed away while we waited)
is opened again, so a holder always holds the folder's current lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from scaling.errors import UsageError

LOCK_FILE = ".lock"
POLL_S = 0.5  # how often a waiting launch tries the lock again


@dataclass(frozen=True)
class Holder:
    """Who holds a run folder's lock: process id, host name, start time (ISO 8601), config hash."""

    pid: int
    host: str
    since: str
    config: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since}"


def read_holder(run_dir: Path) -> Holder | None:
    """The holder written in run_dir/.lock, or None (no lock file, not written yet, or not ours)."""
    try:
        data = json.loads((Path(run_dir) / LOCK_FILE).read_text())
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"]), str(data["config"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_locked(run_dir: Path) -> bool:
    """Whether a process holds run_dir's lock now (a snapshot: it may change at once); True when it
    cannot be told (NFS emulates flock with write locks, which need a writable file)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def hold_run_folder(
    run_dir: Path,
    config: str,
    waiting: Callable[[Holder | None], None],
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[None]:
    """Hold run_dir's lock for the block, waiting while another process holds it.

    Parameters
    ----------
    run_dir : the run folder (it must exist).
    config : a hash of the run's config identity; a holder of another config is refused at once.
    waiting : called once, with the holder when known, if the lock is busy (to say who is waited for).
    stopped : polled while waiting; when it returns True the wait ends with a UsageError.
    """
    path = Path(run_dir) / LOCK_FILE
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(run_dir)
            if holder is not None and holder.config != config:
                raise UsageError(
                    f"run folder {run_dir} is being trained with another config by {holder}; give another "
                    "folder (hydra.run.dir=...)"
                ) from None
            if not announced:
                waiting(holder)
                announced = True
            if stopped():
                raise UsageError(f"stopped while waiting for {run_dir}; nothing was changed") from None
            time.sleep(POLL_S)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the folder was moved away (and maybe recreated) while we waited: lock the new file
    try:
        holder = Holder(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S%z"), config)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(holder)) + "\n").encode(), 0)
        yield
    finally:
        os.close(fd)
