"""The search indexer's extraction process: reads just-stored blobs and indexes their words,
on the other core, off the pull's GIL and below its priority (reading back, parsing and the
FTS5 inserts are the index's whole cost; the pull's process only sends blob names).

    python -m migrator.archive.search_extractor   (started by `SearchIndexer`)

It imports no SQLAlchemy, so it starts in a few tens of milliseconds. stdin: pickled
objects, first `(archive root, compression, manifest file)`, then lists of SHA-256 names.
With a manifest file (SQLite) it writes the index itself (`search_sqlite.py`): blobs
indexed already are skipped, the rest parsed by a thread at niceness 10 while batches come
(the pull runs), what is left after the last one at the normal priority (the pull waits for
it), and written by a thread at the normal priority (a transaction holds the write lock the
pull's commits wait for), up to `WRITE_DOCS` messages per transaction; stdout
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
        """Its replies (see the module doc), until the process ends."""
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


def reply(replies: BinaryIO, value: Reply) -> None:
    pickle.dump(value, replies, protocol=pickle.HIGHEST_PROTOCOL)
    replies.flush()


class IndexWriter:
    """The thread writing a manifest file's index, fed parsed messages through a short
    queue, at the normal priority. While it holds the write lock (which the pull's commits
    wait for) the parsers wait for `turn` between messages, so the transaction never waits
    for the GIL held by a thread that gives way to everything else."""

    def __init__(self, database: str, replies: BinaryIO) -> None:
        self.connection = search_sqlite.connect(database)
        self.replies = replies
        self.queue: queue.Queue[tuple[str, SearchText] | None] = queue.Queue(maxsize=200)
        self.failed = False
        self.turn = threading.Lock()  # a parser's per message, the writer's per transaction
        self.thread = threading.Thread(target=self._run, name="search-index-writer",
                                       daemon=True)
        self.thread.start()

    def put(self, sha: str, text: SearchText) -> None:
        self.queue.put((sha, text))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.connection.close()

    def _run(self) -> None:
        held: list[tuple[str, SearchText]] = []
        chars = 0
        while (found := self.queue.get()) is not None:
            if self.failed:
                continue  # drained, so no parser blocks on a full queue
            held.append(found)
            chars += len(found[1].body)
            if len(held) >= search_sqlite.WRITE_DOCS or chars >= search_sqlite.WRITE_CHARS:
                self._write(held)
                held, chars = [], 0
        self._write(held)

    def _write(self, texts: list[tuple[str, SearchText]]) -> None:
        if self.failed or not texts:
            return
        try:
            with self.turn:
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


class Parsers:
    """Blobs to parse, one at a time, for the writer: while the pull runs a thread at
    niceness `NICENESS` parses them (giving way to the pull); once the parent has sent
    the last batch (the pull is done and waits), `finish_here` parses what is left in the
    calling thread at the normal priority (a niced tail would wait behind any other load)."""

    def __init__(self, store: BlobStore, writer: IndexWriter) -> None:
        self.store, self.writer = store, writer
        self.todo: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run_niced, name="search-index-parser",
                                       daemon=True)
        self.thread.start()

    def add(self, shas: Sequence[str]) -> None:
        for sha in shas:
            self.todo.put(sha)

    def finish_here(self) -> None:
        self.todo.put(None)
        self._work()
        self.thread.join()

    def _run_niced(self) -> None:
        os.nice(NICENESS)  # this thread only: on Linux a nice value is a thread's own
        self._work()

    def _work(self) -> None:
        while (sha := self.todo.get()) is not None:
            if self.writer.failed:
                continue
            with self.writer.turn:
                text = read_text(self.store, sha)
            if text is not None:
                self.writer.put(sha, text)
        self.todo.put(None)  # for the other parser


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
    writer = IndexWriter(database, replies)
    reader = search_sqlite.connect(database)
    try:
        parsers = Parsers(store, writer)
        while (shas := next_request(requests)) is not None:
            if not writer.failed:
                parsers.add(search_sqlite.not_indexed(reader, shas))
        parsers.finish_here()
    finally:
        writer.close()
        reader.close()
    return 0


NICENESS = 10  # the index gives way to the pull it serves (and to the servers beside it)


def main() -> int:
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (OSError, KeyboardInterrupt):  # the parent went away; Ctrl-C reaches the group
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
