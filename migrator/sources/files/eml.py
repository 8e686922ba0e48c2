""".eml files read as a source: the inverse of `migrator export --format eml`.

Each directory under the root is a folder named by its path (`Archive/2019`); `.eml` files
directly in the root go to INBOX, and so does a single `.eml` file given as the path. A
directory holding only other directories is not a folder of its own. Key: the file's name
(the export's names are fixed by the message); INTERNALDATE: the file's mtime (the export sets
it to the received date). A `.eml` file carries no flags.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from datetime import UTC, datetime

from migrator.errors import SourcePathError
from migrator.sources.files import FileFolder, FileMessage

INBOX = "INBOX"
SUFFIX = ".eml"
MAX_DEPTH = 32


class EmlSource:
    def __init__(self, path: str) -> None:
        if os.path.isfile(path):
            self.dirs = {INBOX: (os.path.dirname(path) or ".", [os.path.basename(path)])}
        elif os.path.isdir(path):
            self.dirs = dict(_tree(path, "", 0))
        else:
            raise SourcePathError(f"{path}: no such .eml file or directory")

    def folders(self) -> list[FileFolder]:
        return [FileFolder(name) for name in sorted(self.dirs)]

    def messages(self, folder: FileFolder) -> Iterator[FileMessage]:
        directory, names = self.dirs[folder.name]
        for name in names:
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue  # removed since the listing
            yield FileMessage(key=name, flags=(), size=stat.st_size,
                              internaldate=datetime.fromtimestamp(int(stat.st_mtime), UTC),
                              read=functools.partial(_read, path))

    def close(self) -> None:
        """Nothing held open."""


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _tree(directory: str, name: str, depth: int) -> Iterator[tuple[str, tuple[str, list[str]]]]:
    if depth > MAX_DEPTH:
        return
    entries = sorted(entry for entry in os.listdir(directory) if not entry.startswith("."))
    files = [entry for entry in entries if entry.lower().endswith(SUFFIX)
             and os.path.isfile(os.path.join(directory, entry))]
    subdirs = [entry for entry in entries if os.path.isdir(os.path.join(directory, entry))]
    if files or (name and not subdirs):
        yield name or INBOX, (directory, files)
    for entry in subdirs:
        yield from _tree(os.path.join(directory, entry), f"{name}/{entry}" if name else entry,
                         depth + 1)
