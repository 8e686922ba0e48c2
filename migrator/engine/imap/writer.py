"""The IMAP pull's side of the archive writer: what a fetched batch's rows are.

Blobs, budget, syncing and the commit order are the archive writer's (`archive/writer.py`);
this module says what one FETCH batch records once its blobs are durable: message rows keyed
by UIDVALIDITY and UID (moving rows in a re-map), the failures of UIDs given up on, and, after
the folder's last batch, its sync state.
"""

from __future__ import annotations

import logging

from migrator.archive.manifest import flags_text
from migrator.archive.writer import ArchiveWriter, Tuning, WriteBatch
from migrator.engine.events import TaskAdvanced
from migrator.engine.imap.context import PullContext
from migrator.engine.imap.jobs import Batch, Received
from migrator.engine.imap.records import (
    StoredMessage,
    finish_folder,
    record_batch,
    record_failures,
    resolve_failures,
)
from migrator.sources.imap import SourceMessage
from migrator.testhook import kill_point

log = logging.getLogger(__name__)

# Sealed batches waiting for the committer (syncfs, then rows). Beyond this a connection
# waits before reading on: the body budget frees memory once a blob is written, but what a
# batch records (UIDs, flags, hashes) stays until its commit, and a committer slowed by a busy
# disk let that grow with the mailbox (peak RSS 145 MB for 50,000 messages).
QUEUED_BATCHES = 4


class BatchWriter:
    """Hands each message to the archive writer as it is read; commits a batch when the
    fetcher says it is complete (every UID received or given up)."""

    def __init__(self, ctx: PullContext, threads: int) -> None:
        self.ctx = ctx
        self.archive: ArchiveWriter[Received] = ArchiveWriter(
            ctx.store, ctx.budget, Tuning(threads=threads, queued_batches=QUEUED_BATCHES),
            on_error=ctx.fatal)

    def write(self, batch: Batch, message: SourceMessage, reserved: int) -> None:
        """Take over a message just read; `reserved` budget bytes are released once it is
        written (called by a reader, which goes on reading)."""
        kill_point("fetched")
        received = Received(message.uid, flags_text(message.flags), message.internaldate,
                            len(message.data))
        self.archive.put(self._blobs(batch), received, message.data, reserved)
        batch.received[message.uid] = received

    def complete(self, batch: Batch) -> None:
        """The batch is read (every UID received or given up): commit it when durable."""
        self.archive.seal(self._blobs(batch))

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self.archive.close()

    def _blobs(self, batch: Batch) -> WriteBatch[Received]:
        """The archive writer's batch for this FETCH batch (only its one reader calls this)."""
        if batch.blobs is None:
            batch.blobs = WriteBatch(lambda written: self._record(batch, written))
        return batch.blobs

    def _record(self, batch: Batch, written: list[StoredMessage]) -> None:
        ctx, job = self.ctx, batch.job
        if ctx.fatal_error is not None:
            return  # after a fatal error nothing more is committed
        stored = sorted(written, key=lambda m: m.key.uid)
        with ctx.db_lock, ctx.manifest.session() as session:
            counts = record_batch(session, job.folder_id, job.status.uidvalidity, stored,
                                  job.remap)
            if batch.failed:
                record_failures(session, ctx.run_id, ctx.account_id, job.folder.name,
                                batch.failed)
                job.any_failures = True
            if job.had_failures and stored:
                resolve_failures(session, ctx.account_id, job.folder.name,
                                 [m.key.uid for m in stored])
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
