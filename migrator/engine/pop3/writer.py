"""The POP3 pull's side of the archive writer: UIDL-keyed rows, and the tuning measured for it.

Blobs, budget, syncing and the commit order are the archive writer's (`archive/writer.py`);
this module says what a batch of retrieved messages records once its blobs are durable: one
row per (UIDL, content) not yet archived, so a resumed run adds nothing twice, inserted with
Core executemany (one statement per batch, not one ORM object per message).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from migrator.archive.blob_rows import insert_blobs
from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.manifest import MessageRow, utcnow
from migrator.archive.writer import ArchiveWriter, BatchStream, Tuning, Written
from migrator.budget import ByteBudget
from migrator.testhook import kill_point

MESSAGES = cast(Table, MessageRow.__table__)
CHUNK = 500  # parameters per IN (...) query, well under SQLite's limit
# One writer thread: measured against 2, 4 and 6, more threads only fight the reading thread
# for the GIL (each blob is a few syscalls between bits of Python), and a single session's
# RETR stream is read by one thread anyway. 16 messages (1 MB) per hand-off to it: fewer
# wake-ups, less GIL traffic. Two sealed batches at most wait for their commit.
TUNING = Tuning(threads=1, chunk_messages=16, chunk_bytes=1024 * 1024, queued_batches=2)

Stored = Written[str]  # a retrieved message (keyed by its UIDL) whose blob is durable
Committed = Callable[[Sequence[Stored], int], None]  # (stored messages, rows added)


def open_writer(manifest: Manifest, store: BlobStore, folder_id: int, on_committed: Committed,
                *, batch_messages: int = 1000, batch_bytes: int = 64 * 1024 * 1024,
                unwritten_bytes: int = 64 * 1024 * 1024) -> BatchStream[str]:
    """A stream to `add(uidl, data)` retrieved messages to; `close()` commits the rest and
    raises what went wrong. At most `unwritten_bytes` are read but not yet written."""

    def record(stored: list[Stored]) -> None:
        with manifest.session() as session:
            added = record_rows(session, folder_id, stored)
        kill_point("batch-stored")
        on_committed(stored, added)

    writer: ArchiveWriter[str] = ArchiveWriter(store, ByteBudget(unwritten_bytes), TUNING)
    return BatchStream(writer, record, batch_messages, batch_bytes)


def record_rows(session: Session, folder_id: int, stored: Sequence[Stored]) -> int:
    """Insert the rows of messages whose blobs are durable; (UIDL, content) pairs already
    recorded are skipped, so a resumed run adds nothing twice. Returns rows added."""
    now = utcnow()
    uidls = sorted({item.key for item in stored})
    seen: set[tuple[str, str]] = set()
    for start in range(0, len(uidls), CHUNK):
        seen.update((uidl, sha) for uidl, sha in session.execute(
            select(MESSAGES.c.uidl, MESSAGES.c.sha256).where(
                MESSAGES.c.folder_id == folder_id,
                MESSAGES.c.uidl.in_(uidls[start:start + CHUNK]))))
    insert_blobs(session, {item.ref.sha256: item.ref.size for item in stored})
    rows = []
    for item in stored:
        sha = item.ref.sha256
        if (item.key, sha) in seen:
            continue
        seen.add((item.key, sha))
        rows.append({"folder_id": folder_id, "uidl": item.key, "sha256": sha,
                     "size": item.ref.size, "flags": "", "message_id": item.message_id,
                     "first_seen": now})
    if rows:
        session.execute(insert(MESSAGES), rows)
    return len(rows)
