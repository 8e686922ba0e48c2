"""The search indexer's extraction process: reads just-stored blobs and indexes their words,
on the other core and off the pull's GIL (reading back, parsing and the FTS5 inserts are the
index's whole cost; the pull's process only sends blob names).

    python -m migrator.archive.search_extractor   (started by `SearchIndexer`)

It imports no SQLAlchemy, so it starts in a few tens of milliseconds. stdin: pickled
objects, first `(archive root, compression, manifest file)`, then lists of SHA-256 names.
With a manifest file (SQLite) it writes the index itself (`search_sqlite.py`): blobs
indexed already are skipped, the rest read and parsed by a thread at niceness `NICENESS`,
and written by a second thread, at the normal priority, up to `LOCKED_DOCS` messages per
transaction, then a pause (a transaction holds the write lock the pull's commits wait for:
short ones, never held by a starved thread, each leaving the pull's commit a gap); stdout
gets, per transaction, the number of messages added, or on a failure the exception's class
name (it then writes no more). Without one ("": PostgreSQL, SQLite in memory) stdout gets,
for each list, one pickled list of `(sha, fields)`, `fields` the `SearchText` as a tuple,
and the parent writes them. A blob it cannot read is skipped (`repair` brings it back, the
next catch-up indexes it). At the end of stdin (the parent closed it, or died) it exits:
status 0, or 1 on a broken pipe or an interrupt (the parent's warning says the rest).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from migrator.archive import search_sqlite
from migrator.archive.blobs import BlobStore
from migrator.archive.search_text import SearchText, extract
from migrator.errors import MigratorError

COMMAND = (sys.executable, "-m", "migrator.archive.search_extractor")
Fields = tuple[str, str, str, str, str | None, str]
Extracted = list[tuple[str, Fields | None]]
Reply = Extracted | int | str  # fields to write; messages it wrote; why it stopped writing


def read_text(store: BlobStore, sha: str) -> SearchText | None:
    """A blob's words (None: not readable)."""
    try:
        return extract(store.read(sha))
    except (MigratorError, OSError, EOFError):
        return None


def extract_blobs(store: BlobStore, shas: Sequence[str]) -> Extracted:
    """Each blob's fields (None: not readable)."""
    found: Extracted = []
    for sha in shas:
        text = read_text(store, sha)
        found.append((sha, None if text is None else (
            text.sender, text.recipients, text.cc, text.subject, text.date, text.body)))
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
    def start(cls, store: BlobStore, database: str = "") -> ExtractorProcess:
        """A process that writes the index of the SQLite manifest file `database` itself,
        or ("") returns the fields. Raises OSError when no process can be started."""
        process = subprocess.Popen(
            COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        extractor = cls(process)
        extractor.send_object((str(store.root), store.compression, database))
        return extractor

    def send(self, shas: Sequence[str]) -> None:
        """Raises OSError when the process is gone."""
        self.send_object(list(shas))

    def send_object(self, value: object) -> None:
        pickle.dump(value, self.requests, protocol=pickle.HIGHEST_PROTOCOL)
        self.requests.flush()

    def replies(self) -> Iterator[Reply]:
        """Its replies (see the module doc), until the process ends. A reply that cannot be
        read (UnpicklingError, or e.g. UnicodeDecodeError) is raised: the stream is lost."""
        while True:
            try:
                yield pickle.load(self.replies_from)
            except (EOFError, OSError):
                return

    def finish(self) -> None:
        """No more batches: the process exits once it has replied to those sent."""
        with contextlib.suppress(OSError):
            self.requests.close()

    def wait(self) -> int:
        self.replies_from.close()
        return self.process.wait()


def reply(replies: BinaryIO, value: Reply) -> None:
    pickle.dump(value, replies, protocol=pickle.HIGHEST_PROTOCOL)
    replies.flush()


class IndexWriter:
    """The thread writing a manifest file's index, fed parsed messages through a short
    queue (SQLite releases the GIL while it inserts, so parsing goes on meanwhile)."""

    def __init__(self, database: str, replies: BinaryIO) -> None:
        self.connection = search_sqlite.connect(database)
        self.replies = replies
        self.queue: queue.Queue[list[tuple[str, SearchText]] | None] = queue.Queue(maxsize=4)
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="search-index-writer",
                                       daemon=True)
        self.thread.start()

    def put(self, texts: list[tuple[str, SearchText]]) -> None:
        self.queue.put(texts)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.connection.close()

    def _run(self) -> None:
        held = search_sqlite.HeldWrites(self._write, lambda item: len(item[1].body),
                                        search_sqlite.LOCKED_DOCS, search_sqlite.LOCKED_CHARS)
        while (texts := self.queue.get()) is not None:
            if not self.failed:  # after a failure drained: the parser never blocks on it
                held.add(texts)
        held.flush()

    def _write(self, texts: list[tuple[str, SearchText]]) -> None:
        if self.failed or not texts:
            return
        try:
            added = search_sqlite.write_transaction(self.connection, texts)
        except Exception as exc:  # a locked or full manifest: the parent warns, once
            self.failed = True
            with contextlib.suppress(OSError):
                reply(self.replies, exc.__class__.__name__)
            return
        try:
            reply(self.replies, added)
        except OSError:  # the parent went away
            self.failed = True
        time.sleep(search_sqlite.LOCK_GAP)  # the pull's commit waiting for the lock gets in


def next_request(requests: BinaryIO) -> list[str] | None:
    try:
        return list(pickle.load(requests))
    except EOFError:
        return None


def serve(requests: BinaryIO, replies: BinaryIO) -> int:
    root, compression, database = pickle.load(requests)
    store = BlobStore(Path(root), compression)
    if not database:
        os.nice(NICENESS)
        while (shas := next_request(requests)) is not None:
            reply(replies, extract_blobs(store, shas))
        return 0
    writer = IndexWriter(database, replies)  # started first: it keeps this priority
    nice_this_thread(NICENESS)
    reader = search_sqlite.connect(database)
    try:
        while (shas := next_request(requests)) is not None:
            if writer.failed:
                continue
            texts = [(sha, read_text(store, sha))
                     for sha in search_sqlite.not_indexed(reader, shas)]
            writer.put([(sha, text) for sha, text in texts if text is not None])
    finally:
        writer.close()
        reader.close()
    return 0


# Reading and parsing give way to the pull they serve (and to the servers beside it): the
# whole process when it returns words; when it writes a manifest file's index, only the
# parsing thread, not the writer: a transaction holds the write lock the pull's commits wait
# for, and a niced writer would hold it as long as any other load kept it off a core
NICENESS = 10


def nice_this_thread(increment: int) -> None:
    """Lower the calling thread's priority only (Linux keeps one per thread; elsewhere, where
    a thread's id is no process id, nothing changes)."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread,
                       os.getpriority(os.PRIO_PROCESS, thread) + increment)


def main() -> int:
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (OSError, KeyboardInterrupt):  # the parent went away; Ctrl-C reaches the group
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
