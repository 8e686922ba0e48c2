"""Accounts and folders in the manifest, and messages put into the archive in one call.

`add_messages` is for imports, tests and benchmarks: it goes through the archive writer like
the pulls do (blobs made durable first, then their rows), so a crash between the two steps
leaves only an unreferenced blob, which the next run reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from migrator.archive.blob_rows import insert_blobs
from migrator.archive.blobs import BlobRef, BlobStore
from migrator.archive.db import Manifest
from migrator.archive.manifest import AccountRow, FolderRow, MessageRow, flags_text
from migrator.archive.writer import ArchiveWriter, WriteBatch, Written
from migrator.budget import ByteBudget

BUDGET_BYTES = 64 * 1024 * 1024  # handed over but not yet written


@dataclass(frozen=True)
class FetchedMessage:
    """A message as the source served it, with what the manifest records about it."""

    data: bytes = field(repr=False)
    uid: int | None = None
    uidvalidity: int | None = None
    uidl: str | None = None
    internaldate: str | None = None  # ISO 8601 with offset
    flags: tuple[str, ...] = ()


def ensure_account(session: Session, name: str, source_kind: str) -> AccountRow:
    row = session.scalars(select(AccountRow).where(AccountRow.name == name)).first()
    if row is None:
        row = AccountRow(name=name, source_kind=source_kind)
        session.add(row)
        session.flush()
    return row


def ensure_folder(session: Session, account: AccountRow, name: str, raw_name: str | None = None,
                  delimiter: str | None = None, special_use: str | None = None) -> FolderRow:
    row = session.scalars(select(FolderRow).where(FolderRow.account_id == account.id,
                                                  FolderRow.name == name)).first()
    if row is None:
        row = FolderRow(account_id=account.id, name=name, raw_name=raw_name or name,
                        delimiter=delimiter, special_use=special_use)
        session.add(row)
        session.flush()
    else:
        row.raw_name = raw_name or row.raw_name
        row.delimiter = delimiter if delimiter is not None else row.delimiter
        row.special_use = special_use if special_use is not None else row.special_use
        row.gone_at = None
    return row


def record_messages(session: Session, folder_id: int,
                    written: Sequence[Written[FetchedMessage]]) -> int:
    """Insert rows for blobs already durable; a message already recorded is skipped.
    Returns rows added."""
    insert_blobs(session, {item.ref.sha256: item.ref.size for item in written})
    added = 0
    for item in written:
        message, ref = item.key, item.ref
        if _already_recorded(session, folder_id, message, ref):
            continue
        session.add(MessageRow(folder_id=folder_id, uid=message.uid,
                               uidvalidity=message.uidvalidity, uidl=message.uidl,
                               sha256=ref.sha256, size=ref.size,
                               internaldate=message.internaldate,
                               flags=flags_text(message.flags), message_id=item.message_id))
        added += 1
    session.flush()
    return added


def _already_recorded(session: Session, folder_id: int, message: FetchedMessage,
                      ref: BlobRef) -> bool:
    query = select(MessageRow.id).where(MessageRow.folder_id == folder_id)
    if message.uid is not None:
        query = query.where(MessageRow.uidvalidity == message.uidvalidity,
                            MessageRow.uid == message.uid)
    elif message.uidl is not None:
        query = query.where(MessageRow.uidl == message.uidl, MessageRow.sha256 == ref.sha256)
    else:
        return False
    return session.scalars(query.limit(1)).first() is not None


def add_messages(manifest: Manifest, store: BlobStore, folder_id: int,
                 messages: Sequence[FetchedMessage]) -> int:
    """Durable blobs, then one transaction for the batch's rows; returns rows added."""
    added = 0

    def record(written: list[Written[FetchedMessage]]) -> None:
        nonlocal added
        with manifest.session() as session:
            added = record_messages(session, folder_id, written)

    writer: ArchiveWriter[FetchedMessage] = ArchiveWriter(store, ByteBudget(BUDGET_BYTES))
    batch = WriteBatch(record)
    try:
        for message in messages:
            writer.put(batch, message, message.data)
        writer.seal(batch)
    finally:
        writer.close()
    if writer.error is not None:
        raise writer.error
    return added
