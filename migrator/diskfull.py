"""A full disk, however it shows up: ENOSPC or EDQUOT from the OS, or SQLite's SQLITE_FULL
("database or disk is full") through SQLAlchemy, or its "disk I/O error" when the WAL index
(the -shm file, mapped in memory) cannot grow on a full filesystem.

Which write meets a full disk first (a blob, the manifest, its WAL, the lock file, the
token cache, a report) depends on what else the run was doing, so every place that writes
maps it, and the command line's one error boundary maps whatever still gets through: a
full disk is always exit 10 (STORAGE) with one line, never an internal error.
"""

from __future__ import annotations

import errno

from migrator.errors import StorageError

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = "database or disk is full"
SQLITE_IOERR = "disk I/O error"
_CHAIN_LIMIT = 8  # links of __cause__ / __context__ looked at


def full_reason(exc: BaseException | None) -> str | None:
    """Why `exc` (or what caused it) means the archive's disk cannot take more, or None."""
    for _ in range(_CHAIN_LIMIT):
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return "no space left on device"
        text = str(exc)
        if SQLITE_FULL in text:
            return "no space left on device"
        if SQLITE_IOERR in text:
            return "disk I/O error (is the disk full?)"
        exc = exc.__cause__ or exc.__context__
    return None


def is_disk_full(exc: BaseException | None) -> bool:
    return full_reason(exc) is not None


def disk_full(what: str, exc: BaseException | None = None) -> StorageError:
    """The one line for a full disk met while writing `what`."""
    reason = full_reason(exc) or "no space left on device"
    return StorageError(f"{what}: {reason}; free some space and run again (nothing written "
                        "so far is lost)")
