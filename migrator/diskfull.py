"""A full disk, however it shows up: ENOSPC or EDQUOT from the OS, or SQLite's SQLITE_FULL
("database or disk is full") through SQLAlchemy.

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
_CHAIN_LIMIT = 8  # links of __cause__ / __context__ looked at


def is_disk_full(exc: BaseException | None) -> bool:
    """Is `exc`, or what caused it, a full disk?"""
    for _ in range(_CHAIN_LIMIT):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if SQLITE_FULL in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full(what: str) -> StorageError:
    """The one line for a full disk met while writing `what`."""
    return StorageError(f"{what}: no space left on device; free some space and run again "
                        "(nothing written so far is lost)")
