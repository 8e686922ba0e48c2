"""Blobs written on a pool of threads, rows committed per batch once its blobs are durable.

Readers hand each message over as it arrives and go on reading: hashing and writing overlap
the network. When a batch is fully read, the committer waits for its blobs, makes them durable
at once (`BlobStore.sync`: one syncfs for the batch where Linux has it, else an fsync per file
and directory), then commits the batch's rows in one transaction. Only the committer thread
syncs, so no batch can find its files taken (and not yet synced) by another's sync. A kill at
any instant leaves at worst blobs without rows, which the next run writes again or reuses.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from migrator.engine.events import TaskAdvanced
from migrator.engine.imap.context import PullContext
from migrator.engine.imap.jobs import Batch, Received
from migrator.engine.imap.plan import flags_text
from migrator.engine.imap.records import (
    StoredMessage,
    finish_folder,
    record_batch,
    record_failures,
    resolve_failures,
)
from migrator.headers import message_id
from migrator.sources.imap import SourceMessage
from migrator.testhook import kill_point

log = logging.getLogger(__name__)


class BatchWriter:
    def __init__(self, ctx: PullContext, threads: int) -> None:
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blob-writer")
        self.batches: queue.Queue[Batch | None] = queue.Queue()
        self.committer = threading.Thread(target=self._commit_loop, name="committer",
                                          daemon=True)
        self.committer.start()

    def write(self, batch: Batch, message: SourceMessage, reserved: int) -> None:
        """Take over a message just read; `reserved` budget bytes are released once it is
        written (called by a reader, which goes on reading)."""
        kill_point("fetched")
        try:
            future = self.pool.submit(self._put, message, reserved)
        except BaseException:
            self.ctx.budget.release(reserved)
            raise
        batch.received[message.uid] = Received(message.uid, flags_text(message.flags),
                                               message.internaldate, len(message.data), future)

    def _put(self, message: SourceMessage, reserved: int) -> StoredMessage:
        try:
            ref = self.ctx.store.put(message.data, defer_dir_sync=True, defer_file_sync=True)
            return StoredMessage(message.uid, flags_text(message.flags), message.internaldate,
                                 ref, message_id(message.data))
        finally:
            self.ctx.budget.release(reserved)

    def complete(self, batch: Batch) -> None:
        """The batch is read (every UID received or given up): commit it when durable."""
        self.batches.put(batch)

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self.batches.put(None)
        self.committer.join()
        self.pool.shutdown(wait=True)

    def _commit_loop(self) -> None:
        while True:
            batch = self.batches.get()
            if batch is None:
                return
            if self.ctx.fatal_error is not None:
                continue  # after a fatal error nothing more is committed
            try:
                self._commit(batch)
            except BaseException as exc:  # a full disk, a broken manifest: stop everything
                self.ctx.fatal(exc)

    def _commit(self, batch: Batch) -> None:
        stored = sorted((received.stored.result() for received in batch.received.values()),
                        key=lambda m: m.uid)
        self.ctx.store.sync()  # only this thread syncs: nothing is popped by another one
        kill_point("blobs-durable")
        job, ctx = batch.job, self.ctx
        with ctx.db_lock, ctx.manifest.session() as session:
            counts = record_batch(session, job.folder_id, job.status.uidvalidity, stored,
                                  job.remap)
            if batch.failed:
                record_failures(session, ctx.run_id, ctx.account_id, job.folder.name,
                                batch.failed)
                job.any_failures = True
            if job.had_failures and stored:
                resolve_failures(session, ctx.account_id, job.folder.name,
                                 [m.uid for m in stored])
            gone = 0
            if job.batch_done() and not job.incomplete and job.abandoned is None:
                gone = finish_folder(session, job.folder_id, job.status,
                                     close_remap=job.remap and not job.any_failures)
        kill_point("committed")
        nbytes = sum(m.ref.size for m in stored)
        ctx.count(fetched=len(stored), fetched_bytes=nbytes, blobs_new=counts.new_blobs,
                  failed=len(batch.failed), gone=gone, remapped=counts.moved)
        for uid, reason in sorted(batch.failed.items()):
            ctx.fail(f"{job.folder.name}: UID {uid}: {reason}")
        ctx.emit(TaskAdvanced("pull", ctx.name, count=len(stored), nbytes=nbytes))
