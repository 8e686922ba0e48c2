"""Writing one message file so that it appears whole or not at all, and batching durability.

A message is written to a temporary name, given its date as mtime (Dovecot and others read
a Maildir file's mtime as its INTERNALDATE), then renamed into place. A batch of such files
is made durable at once (syncfs(2), else fsync per file and directory) before the journal
records it.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

from migrator.durable import (
    TEMP_PREFIX,
    atomic_write,
    fsync_dir,
    fsync_file,
    sync_filesystem,
)

FILE_MODE = 0o600  # mail is private, as in any Maildir
# One syncfs makes a big batch durable far cheaper than an fsync per file, but it writes out
# every dirty page of the filesystem (anybody's): a small folder's few files are fsynced.
SYNCFS_FROM = 64


def place(temp_dir: str, final: str, data: bytes, when: datetime | None) -> None:
    """Write `data` at `final` via a temp file in `temp_dir` (same filesystem).

    Plain strings and os calls: this runs once per message, and pathlib's objects cost a
    fifth of an export's CPU when they were used here.
    """
    atomic_write(final, data, mode=FILE_MODE, fsync=False, sync_dir=False, temp_dir=temp_dir,
                 mtime=None if when is None else when.timestamp())


def clear_temps(directory: Path) -> None:
    """Remove temp files a killed export left (only ours: the durable.py prefix)."""
    for name in os.listdir(directory):
        if name.startswith(TEMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)


def make_dirs(path: Path, settler: Settler) -> None:
    """Create `path` and its missing parents; each new entry is settled with the batch."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        settler.dirs.add(directory.parent)


class Settler:
    """Files and directories written since the last batch, made durable together."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.files: list[str] = []
        self.dirs: set[str | Path] = set()

    def written(self, path: str, directory: str) -> None:
        self.files.append(path)
        self.dirs.add(directory)

    def settle(self) -> None:
        if not (self.files or self.dirs):
            return
        if len(self.files) < SYNCFS_FROM or not sync_filesystem(self.dest):
            for path in self.files:
                fsync_file(path)
            for directory in sorted(map(str, self.dirs)):
                fsync_dir(directory)
        self.files, self.dirs = [], set()
