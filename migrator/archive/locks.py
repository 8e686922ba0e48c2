"""One run per account at a time: an advisory lock file per account in the archive.

`flock` is released by the kernel when its process dies, so the lock of a crashed run is
taken over without any stale-lock guessing; the pid written inside only serves messages,
and a holder that ends normally clears it, so only a run that really died is reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migrator.errors import LockedError, StorageError

log = logging.getLogger(__name__)


def lock_path(archive: Path, account: str) -> Path:
    return archive / "locks" / f"{account}.lock"


def _read_pid(handle: int) -> int | None:
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def account_lock(archive: Path, account: str) -> Iterator[None]:
    """Hold the account's lock for the duration of the block, or raise LockedError at once."""
    path = lock_path(archive, account)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"{account}: cannot create lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(handle)
            who = f"pid {holder}" if holder else "another process"
            raise LockedError(f"{account}: another migrator run ({who}) is working on this "
                              f"account; lock {path}") from None
        previous = _read_pid(handle)
        if previous and previous != os.getpid() and not process_alive(previous):
            log.info("%s: taking over the lock of a run that ended without releasing it "
                     "(pid %d)", account, previous)
        _write_pid(handle, account, path)
        try:
            yield
        finally:
            # a pid left in the file would make the next run report this one as crashed
            with contextlib.suppress(OSError):
                os.ftruncate(handle, 0)
    finally:
        os.close(handle)  # closing releases the flock


def _write_pid(handle: int, account: str, path: Path) -> None:
    """Our pid, for the message of a run refused for the lock (a full disk refuses it too)."""
    try:
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        raise StorageError(f"{account}: cannot write lock {path}: {exc.strerror}") from None
