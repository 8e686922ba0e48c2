"""The search index: stored messages' words written to the manifest, and kept up with.

Indexed per blob (content), so it is idempotent and one message archived in two folders is
indexed once. Every writer records its blobs through `insert_blobs`, which notes them on the
session; once that transaction commits, the manifest hands them to its `SearchIndexer`
(attached by the CLI when `[archive] search_index` is on), which has them read back, parsed
and (SQLite manifest file) written by an extraction process (`search_extractor.py`; for
PostgreSQL the indexer writes what it returns), in transactions of their own: the pull
never waits for it, nor shares its GIL with that work (only `close()` at the end of the
command lets it finish its queue, so the index is complete when the command returns).
Whatever a killed or switched-off indexer missed is found by `pending_blobs` (blobs of an
account's messages without a `search_docs` row) and indexed by `catch_up`, which
`migrator search` and `migrator index` run first.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from sqlalchemy import Table, exists, select, text
from sqlalchemy.orm import Session

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.manifest import AccountRow, FolderRow, MessageRow, SearchDocRow
from migrator.archive.search_extractor import Extracted, ExtractorProcess, Fields, as_text
from migrator.archive.search_sqlite import CHUNK, HeldWrites, insert_docs
from migrator.archive.search_text import SearchText, extract
from migrator.errors import MigratorError

log = logging.getLogger(__name__)

DOCS = cast(Table, SearchDocRow.__table__)
BATCH = 200  # messages indexed per transaction
# Blobs waiting for the indexer: beyond this it drops further batches (left to the next
# catch-up) rather than hold a fast pull's backlog in memory (a few MB of names at most)
MAX_WAITING = 50_000

def index_blobs(manifest: Manifest, store: BlobStore, shas: Iterable[str]) -> int:
    """Index the blobs not indexed yet (missing files are skipped: `repair` brings them
    back, the next catch-up indexes them); returns how many were indexed."""
    wanted = sorted(set(shas))
    with manifest.session() as session:
        known = _indexed(session, wanted)
    todo = [sha for sha in wanted if sha not in known]
    done = 0
    for start in range(0, len(todo), BATCH):
        texts = []
        for sha in todo[start:start + BATCH]:
            try:
                data = store.read(sha)
            except (MigratorError, OSError, EOFError) as exc:
                log.debug("not indexed: blob %s: %s", sha, exc)
                continue
            texts.append((sha, extract(data)))
        with manifest.session() as session:
            done += write_docs(session, texts)
    return done


def _indexed(session: Session, shas: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(shas), CHUNK):
        found.update(session.scalars(select(DOCS.c.sha256).where(
            DOCS.c.sha256.in_(shas[start:start + CHUNK]))))
    return found


def write_docs(session: Session, texts: Sequence[tuple[str, SearchText]]) -> int:
    """Rows for extracted texts (SQLite); a blob another process indexed meanwhile is
    skipped. Straight through the driver: per message, SQLAlchemy's statement handling
    cost ten times what SQLite does."""
    if session.get_bind().dialect.name == "postgresql":
        from migrator.archive import search_pg
        return search_pg.write_docs(session, texts)
    return insert_docs(session.connection().connection.driver_connection, texts)  # type: ignore[arg-type]


def pending_blobs(session: Session, account: str | None, limit: int) -> list[str]:
    """Blobs of the account's messages (all accounts: None) not in the index yet."""
    query = (select(MessageRow.sha256).distinct()
             .where(~exists().where(DOCS.c.sha256 == MessageRow.sha256)))
    if account is not None:
        query = (query.join(FolderRow, FolderRow.id == MessageRow.folder_id)
                 .join(AccountRow, AccountRow.id == FolderRow.account_id)
                 .where(AccountRow.name == account))
    return list(session.scalars(query.limit(limit)))


def catch_up(manifest: Manifest, store: BlobStore, account: str | None) -> int:
    """Index every message of the account not indexed yet; returns how many blobs were.
    Bounded: each round indexes what the last one found, and a blob it cannot read is not
    looked for again in this call."""
    done, skipped = 0, set[str]()
    while True:
        with manifest.session() as session:
            found = [sha for sha in pending_blobs(session, account, BATCH + len(skipped))
                     if sha not in skipped]
        if not found:
            return done
        if not done and not skipped:
            log.info("Indexing %s messages not indexed yet (for search)",
                     account or "all accounts'")
        added = index_blobs(manifest, store, found)
        done += added
        if added < len(found):
            with manifest.session() as session:
                skipped.update(set(found) - _indexed(session, found))


def clear_index(manifest: Manifest) -> None:
    """Forget the whole index (`migrator index --rebuild`); the next catch-up refills it."""
    with manifest.session() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("INSERT INTO search_fts (search_fts) VALUES ('delete-all')"))
        else:
            session.execute(text("DELETE FROM search_fts"))
        session.execute(DOCS.delete())


class SearchIndexer:
    """Indexes blobs as their rows commit; `close()` finishes the queue.

    A thread of this process takes the batches the pull submits and hands them to an
    extraction process (`search_extractor.py`: reading, parsing and, for an SQLite manifest
    file, writing: Python work and SQLite's, off the pull's GIL, on the other core). For any
    other manifest the process returns the words and a second thread writes them through the
    manifest's sessions, up to `WRITE_DOCS` messages per transaction. Without that process
    (it cannot start) the first thread extracts and writes itself. A failure (a locked or
    full manifest, a dead process) stops it with one warning: the pull goes on, and the next
    catch-up indexes what it left. When it falls `MAX_WAITING` blobs behind, further
    batches are left to that catch-up rather than held in memory."""

    def __init__(self, manifest: Manifest, store: BlobStore) -> None:
        self.manifest, self.store = manifest, store
        self.queue: queue.Queue[list[str] | None] = queue.Queue()
        self.waiting = 0  # blobs queued, not yet handed on
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.failed = False
        self.dropped = False
        self.indexed = 0

    def submit(self, shas: Iterable[str]) -> None:
        if self.failed:
            return
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="search-indexer",
                                               daemon=True)
                self.thread.start()
        shas = list(shas)
        with self.lock:
            if self.waiting + len(shas) > MAX_WAITING:
                self.dropped = True
                return  # left for the next catch-up
            self.waiting += len(shas)
        self.queue.put(shas)

    def close(self) -> None:
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
            thread.join()

    def _run(self) -> None:
        database = _database_file(self.manifest)
        try:
            extractor = ExtractorProcess.start(self.store, database)
        except OSError as exc:
            log.debug("no extraction process (%s): indexing in this one", exc)
            self._each_batch(self._index_here)
            return
        collector = threading.Thread(target=self._collect, args=(extractor,),
                                     name="search-index-replies", daemon=True)
        collector.start()
        try:
            self._each_batch(extractor.send if database else
                             lambda shas: self._send_not_indexed(extractor, shas))
        finally:
            extractor.finish()
            collector.join()
            status = extractor.wait()
            if status != 0:
                self._fail(f"extraction process exit status {status}")

    def _each_batch(self, handle: Callable[[list[str]], None]) -> None:
        """`handle` each submitted batch until `close()` (none once failed), counting down
        `waiting` whatever happens."""
        while (shas := self._next_batch()) is not None:
            try:
                if not self.failed:
                    handle(shas)
            except Exception as exc:  # the index is a convenience: never stop the pull
                self._fail(exc.__class__.__name__)
            finally:
                with self.lock:
                    self.waiting -= len(shas)

    def _index_here(self, shas: list[str]) -> None:
        self.indexed += index_blobs(self.manifest, self.store, shas)

    def _send_not_indexed(self, extractor: ExtractorProcess, shas: list[str]) -> None:
        with self.manifest.session() as session:
            known = _indexed(session, sorted(set(shas)))
        todo = sorted(set(shas) - known)
        if todo:
            extractor.send(todo)

    def _next_batch(self) -> list[str] | None:
        """The next submitted blobs, with whatever else is waiting (up to `BATCH`); None
        at the end."""
        first = self.queue.get()
        if first is None:
            return None
        batch = list(first)
        while len(batch) < BATCH:
            try:
                more = self.queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self.queue.put(None)  # the end, after this batch
                break
            batch.extend(more)
        return batch

    def _collect(self, extractor: ExtractorProcess) -> None:
        """Takes the process's replies: counts written, a failure, or words to write here;
        reads them to the end even after a failure (a process blocked on a full pipe would
        never exit)."""
        held = HeldWrites(self._write_batch, _body_chars)
        try:
            for reply in extractor.replies():
                if isinstance(reply, int):
                    self.indexed += reply
                elif isinstance(reply, str):
                    self._fail(reply)
                else:
                    held.add(reply)
        except Exception as exc:  # a garbled reply: the rest of the stream is lost, and
            self._fail(exc.__class__.__name__)  # wait() closes it so the process ends
        held.flush()

    def _write_batch(self, found: Extracted) -> None:
        texts = [(sha, as_text(fields)) for sha, fields in found if fields is not None]
        if self.failed or not texts:
            return
        try:
            with self.manifest.session() as session:
                self.indexed += write_docs(session, texts)
        except Exception as exc:
            self._fail(exc.__class__.__name__)

    def _fail(self, reason: str) -> None:
        with self.lock:
            if self.failed:
                return
            self.failed = True
        log.warning("search index not updated (%s); `migrator index` catches up", reason)


def _body_chars(item: tuple[str, Fields | None]) -> int:
    return 0 if item[1] is None else len(item[1][5])


def _database_file(manifest: Manifest) -> str:
    """The SQLite manifest's file ("": PostgreSQL, or SQLite in memory)."""
    url = manifest.engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database == ":memory:" or database.startswith(
            "file:"):
        return ""
    return database


def supported(manifest: Manifest) -> bool:
    """Search runs on SQLite's FTS5 and on PostgreSQL's tsvectors (search_pg.py)."""
    return manifest.engine.dialect.name in ("sqlite", "postgresql")


def attach_indexer(manifest: Manifest, store: BlobStore) -> None:
    """Index every blob this manifest's writers record from now on (see module doc)."""
    if not supported(manifest):
        return
    indexer = SearchIndexer(manifest, store)
    manifest.on_blobs_recorded(indexer.submit, indexer.close)
