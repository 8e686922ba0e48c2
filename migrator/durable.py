"""Durable file writes: temp file in the same directory, fsync, rename, fsync the directory.

Everything migrator keeps on disk (blobs, the token cache, batch reports) is written this
way, so a crash or a full disk leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
TEMP_PREFIX = ".tmp-"
# Part of every temp file's name: on an archive shared by workers on several hosts, the pid
# and thread id alone may be the same on two hosts (containers start at pid 1).
_HOST = socket.gethostname().replace("/", "_")[:40]


def atomic_write(final: str | Path, payload: bytes, *, mode: int = 0o644, fsync: bool = True,
                 sync_dir: bool = True, temp_dir: str | None = None,
                 mtime: float | None = None) -> None:
    """Write `payload` to `final` so that readers see the old file or the whole new one.

    Plain os calls, as the archive's hot path makes a file per message and a buffered file
    object adds syscalls (fstat, ioctl) to each. `fsync=False` and `sync_dir=False` leave
    durability to the caller (a batch syncs once for many files). `temp_dir` (same
    filesystem) holds the temporary file, e.g. a Maildir's tmp/; `mtime` dates the file
    before it appears (a Maildir file's mtime is read as its INTERNALDATE).
    """
    head, name = os.path.split(os.fspath(final))
    temp = os.path.join(temp_dir or head,
                        f"{TEMP_PREFIX}{_HOST}-{os.getpid()}-{threading.get_ident()}-{name}")
    try:
        fd = os.open(temp, _CREATE, mode)
        try:
            write_all(fd, payload)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if sync_dir:
        fsync_dir(head or ".")


def write_all(fd: int, payload: bytes) -> None:
    """os.write until every byte is written (a single write may be short)."""
    with memoryview(payload) as view:
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])


def fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):  # not Linux/glibc: callers fsync file by file
        return None
    function.argtypes = [ctypes.c_int]
    return cast(Callable[[int], int], function)


_syncfs = _load_syncfs() if sys.platform.startswith("linux") else None


def sync_filesystem(directory: Path) -> bool:
    """syncfs(2) on the filesystem holding `directory`; False where unavailable.

    It returns once all data and metadata of that filesystem are on disk, and reports
    write-back errors (Linux >= 5.8), so it can stand in for many fsyncs.
    """
    if _syncfs is None:
        return False
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)
    return True
