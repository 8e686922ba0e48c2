"""The archive side of a POP3 pull: blobs written on threads, rows committed per batch.

The session keeps reading while a pool hashes and writes blobs; a committer thread waits for a
batch's blobs, makes them durable (`BlobStore.sync`), then inserts the batch's rows in one
transaction (Core executemany: one statement per batch, not one ORM object per message).
A kill at any instant leaves at worst durable blobs without rows, reused by the next run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from migrator.archive.blobs import BlobRef, BlobStore
from migrator.archive.db import Manifest
from migrator.archive.manifest import BlobRow, MessageRow, utcnow
from migrator.headers import message_id

MESSAGES = cast(Table, MessageRow.__table__)
BLOBS = cast(Table, BlobRow.__table__)
CHUNK = 500  # parameters per IN (...) query, well under SQLite's limit
CHUNK_MESSAGES = 16  # messages a pool thread takes at once
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    """A message whose blob is durable: what its row records."""

    uidl: str
    ref: BlobRef
    message_id: str | None


@dataclass
class Batch:
    futures: list[Future[list[Stored]]] = field(default_factory=list)
    count: int = 0
    nbytes: int = 0


def _no_hook() -> None:
    return None


Committed = Callable[[Sequence[Stored], int], None]  # (stored messages, rows added)


class BatchWriter:
    """Takes messages as they arrive; `close()` commits what is left and re-raises a failure.

    One writer thread by default: measured against 2, 4 and 6, more threads only fight the
    reading thread for the GIL (each blob is a few syscalls between bits of Python), and a
    single session's RETR stream is read by one thread anyway.
    """

    def __init__(self, manifest: Manifest, store: BlobStore, folder_id: int,
                 on_committed: Committed, *, threads: int = 1, batch_messages: int = 1000,
                 batch_bytes: int = 64 * 1024 * 1024, unwritten_bytes: int = 64 * 1024 * 1024,
                 after_blobs: Callable[[], None] = _no_hook,
                 after_rows: Callable[[], None] = _no_hook) -> None:
        self.manifest, self.store, self.folder_id = manifest, store, folder_id
        self.on_committed = on_committed
        self.limits = (batch_messages, batch_bytes)
        self.room = threading.Condition()  # bytes read but not yet written stay bounded
        self.unwritten, self.max_unwritten = 0, unwritten_bytes
        self.after_blobs, self.after_rows = after_blobs, after_rows
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pop3-blobs")
        self.batches: queue.Queue[Batch | None] = queue.Queue(maxsize=2)  # bounds memory
        self.batch = Batch()
        self.chunk: list[tuple[str, bytes]] = []
        self.chunk_bytes = 0
        self.error: BaseException | None = None
        self.committer = threading.Thread(target=self._commit_loop, name="pop3-committer",
                                          daemon=True)
        self.committer.start()

    def add(self, uidl: str, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        if self._over_budget(len(data)):
            # the messages held back for the next chunk count against the budget too: hand
            # them to the pool first, or nothing would ever free the room waited for
            self._submit()
            with self.room:
                while self._over_budget(len(data)):
                    self.room.wait()
        with self.room:
            self.unwritten += len(data)
        self.chunk.append((uidl, data))
        self.chunk_bytes += len(data)
        self.batch.nbytes += len(data)
        if len(self.chunk) >= CHUNK_MESSAGES or self.chunk_bytes >= CHUNK_BYTES:
            self._submit()
        if self.batch.count >= self.limits[0] or self.batch.nbytes >= self.limits[1]:
            self.flush()

    def _over_budget(self, size: int) -> bool:
        """Would `size` more bytes exceed what may be read but unwritten? (One message alone
        may, however large: it must be written somehow.)"""
        return bool(self.unwritten) and self.unwritten + size > self.max_unwritten

    def _submit(self) -> None:
        """Hand a few messages to one pool thread at once: fewer wake-ups, less GIL traffic."""
        if self.chunk:
            self.batch.futures.append(self.pool.submit(self._put, self.chunk, self.chunk_bytes))
            self.batch.count += len(self.chunk)
            self.chunk, self.chunk_bytes = [], 0

    def _put(self, chunk: list[tuple[str, bytes]], nbytes: int) -> list[Stored]:
        try:
            return [Stored(uidl, self.store.put(data, defer_file_sync=True), message_id(data))
                    for uidl, data in chunk]
        finally:
            with self.room:
                self.unwritten -= nbytes
                self.room.notify_all()

    def flush(self) -> None:
        self._submit()
        if self.batch.futures:
            self.batches.put(self.batch)
            self.batch = Batch()

    def close(self) -> None:
        """Commit everything handed over so far, stop the threads, raise what went wrong."""
        try:
            self.flush()
        finally:
            self.batches.put(None)
            self.committer.join()
            self.pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error

    def _commit_loop(self) -> None:
        while True:
            batch = self.batches.get()
            if batch is None:
                return
            if self.error is not None:
                continue  # after a failure nothing more is committed
            try:
                self._commit(batch)
            except BaseException as exc:  # a full disk, a broken manifest: stop the run
                self.error = exc

    def _commit(self, batch: Batch) -> None:
        stored = [item for future in batch.futures for item in future.result()]
        self.store.sync()
        self.after_blobs()
        with self.manifest.session() as session:
            added = record_rows(session, self.folder_id, stored)
        self.after_rows()
        self.on_committed(stored, added)


def record_rows(session: Session, folder_id: int, stored: Sequence[Stored]) -> int:
    """Insert the rows of messages whose blobs are durable; (UIDL, content) pairs already
    recorded are skipped, so a resumed run adds nothing twice. Returns rows added."""
    now = utcnow()
    uidls = sorted({item.uidl for item in stored})
    seen: set[tuple[str, str]] = set()
    for start in range(0, len(uidls), CHUNK):
        seen.update((uidl, sha) for uidl, sha in session.execute(
            select(MESSAGES.c.uidl, MESSAGES.c.sha256).where(
                MESSAGES.c.folder_id == folder_id,
                MESSAGES.c.uidl.in_(uidls[start:start + CHUNK]))))
    shas = sorted({item.ref.sha256 for item in stored})
    blobs: set[str] = set()
    for start in range(0, len(shas), CHUNK):
        blobs.update(session.scalars(select(BLOBS.c.sha256).where(
            BLOBS.c.sha256.in_(shas[start:start + CHUNK]))))
    new_blobs, rows = {}, []
    for item in stored:
        sha = item.ref.sha256
        if sha not in blobs and sha not in new_blobs:
            new_blobs[sha] = {"sha256": sha, "size": item.ref.size, "stored_at": now}
        if (item.uidl, sha) in seen:
            continue
        seen.add((item.uidl, sha))
        rows.append({"folder_id": folder_id, "uidl": item.uidl, "sha256": sha,
                     "size": item.ref.size, "flags": "", "message_id": item.message_id,
                     "first_seen": now})
    if new_blobs:
        session.execute(insert(BLOBS), list(new_blobs.values()))
    if rows:
        session.execute(insert(MESSAGES), rows)
    return len(rows)
