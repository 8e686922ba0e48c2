"""The archive's one writer: blobs on a pool of threads, a batch's rows only once it is durable.

Every way into the archive (the IMAP pull, the POP3 pull, imports, tests, benchmarks) goes
through here, so the durability order lives in one place. Readers hand each message over as
it arrives and go on reading: hashing and writing overlap the network. A sealed batch goes to
the committer thread, which waits for the batch's blobs, makes them durable at once
(`BlobStore.sync`: one syncfs for the batch where Linux has it, else an fsync per file and
directory), then calls the batch's `record` callback, which writes its rows in one
transaction. Only the committer syncs, so no batch can find its files taken (and not yet
synced) by another's sync. A kill at any instant leaves at worst durable blobs without rows,
which the next run writes again or reuses.

Memory: bytes read but not yet written are held against one `ByteBudget`, released once
their blob is written. A reader that reserved them itself before reading (the IMAP fetcher)
says how much; otherwise the writer reserves a message's size when it is handed over.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from migrator.archive.blobs import BlobRef, BlobStore
from migrator.budget import ByteBudget
from migrator.headers import message_id
from migrator.testhook import kill_point

K = TypeVar("K")


@dataclass(frozen=True)
class Written(Generic[K]):
    """A message whose blob is written (durable by the time `record` sees it)."""

    key: K  # what the caller's rows need besides the content: UID and flags, UIDL, ...
    ref: BlobRef
    message_id: str | None


class WriteBatch(Generic[K]):
    """Messages whose rows commit together: `record` writes them once their blobs are durable.

    One thread at a time hands messages to a batch (the one reading them)."""

    def __init__(self, record: Callable[[list[Written[K]]], None]) -> None:
        self.record = record
        self.futures: list[Future[list[Written[K]]]] = []
        self.chunk: list[tuple[K, bytes]] = []  # handed over, not yet given to the pool
        self.chunk_bytes = 0
        self.chunk_reserved = 0
        self.count = 0
        self.nbytes = 0


@dataclass(frozen=True)
class Tuning:
    """How the work is spread: measured per source, so each pull states its own."""

    threads: int = 1
    chunk_messages: int = 1  # messages a pool thread takes at once (fewer GIL hand-offs)
    chunk_bytes: int = 1024 * 1024
    queued_batches: int = 0  # sealed batches waiting for the committer; 0: no limit


class ArchiveWriter(Generic[K]):
    """Takes messages as they arrive; `close()` commits what was sealed and stops.

    A failure (a full disk, a broken manifest) is kept in `error`, passed to `on_error`, and
    stops all further commits; `close()` does not raise it, the caller decides.
    """

    def __init__(self, store: BlobStore, budget: ByteBudget, tuning: Tuning | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        tuning = tuning or Tuning()
        self.store, self.budget, self.tuning = store, budget, tuning
        self.on_error = on_error
        self.error: BaseException | None = None
        self.pool = ThreadPoolExecutor(max_workers=tuning.threads,
                                       thread_name_prefix="blob-writer")
        self.sealed: queue.Queue[WriteBatch[K] | None] = queue.Queue(tuning.queued_batches)
        self.committer = threading.Thread(target=self._commit_loop, name="committer",
                                          daemon=True)
        self.committer.start()

    def put(self, batch: WriteBatch[K], key: K, data: bytes, reserved: int | None = None
            ) -> None:
        """Take over a message just read. `reserved`: budget bytes its reader already holds
        for it (released once it is written); None: reserve its size now, waiting if need be."""
        if reserved is None:
            reserved = self._reserve(batch, len(data))
        batch.chunk.append((key, data))
        batch.chunk_bytes += len(data)
        batch.chunk_reserved += reserved
        batch.count += 1
        batch.nbytes += len(data)
        if (len(batch.chunk) >= self.tuning.chunk_messages
                or batch.chunk_bytes >= self.tuning.chunk_bytes):
            self._submit(batch)

    def _reserve(self, batch: WriteBatch[K], size: int) -> int:
        if not self.budget.try_reserve(size):
            # the batch's own unsubmitted chunk holds budget too: hand it to the pool first,
            # or nothing would ever free the room waited for
            self._submit(batch)
            self.budget.reserve(size)
        return size

    def _submit(self, batch: WriteBatch[K]) -> None:
        if not batch.chunk:
            return
        chunk, reserved = batch.chunk, batch.chunk_reserved
        batch.chunk, batch.chunk_bytes, batch.chunk_reserved = [], 0, 0
        try:
            batch.futures.append(self.pool.submit(self._write, chunk, reserved))
        except BaseException:
            self.budget.release(reserved)
            raise

    def _write(self, chunk: list[tuple[K, bytes]], reserved: int) -> list[Written[K]]:
        try:
            return [Written(key, self.store.put(data, defer_file_sync=True), message_id(data))
                    for key, data in chunk]
        finally:
            self.budget.release(reserved)

    def seal(self, batch: WriteBatch[K]) -> None:
        """Every message of the batch is handed over: commit it once durable."""
        self._submit(batch)
        self.sealed.put(batch)

    def close(self) -> None:
        """Commit what is sealed, then stop the threads."""
        self.sealed.put(None)
        self.committer.join()
        self.pool.shutdown(wait=True)

    def _commit_loop(self) -> None:
        while (batch := self.sealed.get()) is not None:
            if self.error is not None:
                continue  # after a failure nothing more is committed
            try:
                self._commit(batch)
            except BaseException as exc:  # a full disk, a broken manifest: stop the run
                self.error = exc
                if self.on_error is not None:
                    self.on_error(exc)

    def _commit(self, batch: WriteBatch[K]) -> None:
        written = [item for future in batch.futures for item in future.result()]
        self.store.sync()  # only this thread syncs: no pending file is taken by another
        kill_point("blobs-durable")
        batch.record(written)
        batch.futures = []  # committed: its results need not wait for the batch's last reference


class BatchStream(Generic[K]):
    """A stream of messages cut into batches of at most `max_messages` / `max_bytes` (the
    POP3 pull, imports): `add` as they come, `close` at the end."""

    def __init__(self, writer: ArchiveWriter[K], record: Callable[[list[Written[K]]], None],
                 max_messages: int, max_bytes: int) -> None:
        self.writer, self.record = writer, record
        self.limits = (max_messages, max_bytes)
        self.batch = WriteBatch(record)

    def add(self, key: K, data: bytes) -> None:
        """Hand over one message; raises what made the writer stop."""
        if self.writer.error is not None:
            raise self.writer.error
        self.writer.put(self.batch, key, data)
        if self.batch.count >= self.limits[0] or self.batch.nbytes >= self.limits[1]:
            self.flush()

    def flush(self) -> None:
        if self.batch.count:
            self.writer.seal(self.batch)
            self.batch = WriteBatch(self.record)

    def close(self) -> None:
        """Commit everything handed over so far, stop the writer, raise what went wrong."""
        try:
            self.flush()
        finally:
            self.writer.close()
        if self.writer.error is not None:
            raise self.writer.error
