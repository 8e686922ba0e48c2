"""The search indexer's extraction process: reads just-stored blobs and returns their words,
on the other core and off the pull's GIL (text extraction is Python work; the FTS5 inserts
that follow it run in SQLite with the GIL released, so they stay in the pull's process).

    python -m migrator.archive.search_extractor   (started by `SearchIndexer`)

It touches no manifest and imports no SQLAlchemy, so it starts in a few tens of
milliseconds. stdin: pickled objects, first `(archive root, compression)`, then lists of
SHA-256 names; stdout: for each list, one pickled list of `(sha, fields)`, `fields` the
`SearchText` as a tuple, or None for a blob it could not read (`repair` brings it back, the
next catch-up indexes it). At the end of stdin (the parent closed it, or died) it exits:
status 0, or 1 on a broken pipe or an interrupt (the parent's warning says the rest).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from migrator.archive.blobs import BlobStore
from migrator.archive.search_text import SearchText, extract
from migrator.errors import MigratorError

COMMAND = (sys.executable, "-m", "migrator.archive.search_extractor")
Fields = tuple[str, str, str, str, str | None, str]
Extracted = list[tuple[str, Fields | None]]


def extract_blobs(store: BlobStore, shas: Sequence[str]) -> Extracted:
    """Each blob's fields (None: not readable)."""
    found: Extracted = []
    for sha in shas:
        try:
            data = store.read(sha)
        except (MigratorError, OSError, EOFError):
            found.append((sha, None))
            continue
        text = extract(data)
        found.append((sha, (text.sender, text.recipients, text.cc, text.subject, text.date,
                            text.body)))
    return found


def as_text(fields: Fields) -> SearchText:
    return SearchText(*fields)


class ExtractorProcess:
    """The parent's handle on the process: `send` batches, read `replies` (on another
    thread: each direction blocks only on its own pipe), `finish`, `wait`."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.requests, self.replies_from = process, process.stdin, process.stdout

    @classmethod
    def start(cls, store: BlobStore) -> ExtractorProcess:
        """Raises OSError when no process can be started."""
        process = subprocess.Popen(
            COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        extractor = cls(process)
        extractor.send_object((str(store.root), store.compression))
        return extractor

    def send(self, shas: Sequence[str]) -> None:
        """Raises OSError when the process is gone."""
        self.send_object(list(shas))

    def send_object(self, value: object) -> None:
        pickle.dump(value, self.requests, protocol=pickle.HIGHEST_PROTOCOL)
        self.requests.flush()

    def replies(self) -> Iterator[Extracted]:
        """One list per batch sent, until the process ends."""
        while True:
            try:
                yield pickle.load(self.replies_from)
            except (EOFError, OSError, pickle.UnpicklingError):
                return

    def finish(self) -> None:
        """No more batches: the process exits once it has replied to those sent."""
        with contextlib.suppress(OSError):
            self.requests.close()

    def wait(self) -> int:
        self.replies_from.close()
        return self.process.wait()


def serve(requests: BinaryIO, replies: BinaryIO) -> int:
    root, compression = pickle.load(requests)
    store = BlobStore(Path(root), compression)
    while True:
        try:
            shas = pickle.load(requests)
        except EOFError:
            return 0
        pickle.dump(extract_blobs(store, shas), replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


NICENESS = 10  # the index gives way to the pull it serves (and to the servers beside it)


def main() -> int:
    try:
        os.nice(NICENESS)
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (OSError, KeyboardInterrupt):  # the parent went away; Ctrl-C reaches the group
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
