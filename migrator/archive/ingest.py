"""Put fetched messages into the archive: blobs made durable first, then their rows.

Shared by every source (IMAP, POP3): sources hand over bytes and metadata, this module keeps
the durability order. A crash between the two steps leaves only an unreferenced blob, which
the next run reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from migrator.archive.blobs import BlobRef, BlobStore
from migrator.archive.db import Manifest
from migrator.archive.manifest import AccountRow, BlobRow, FolderRow, MessageRow
from migrator.headers import message_id


@dataclass(frozen=True)
class FetchedMessage:
    """A message as the source served it, with what the manifest records about it."""

    data: bytes = field(repr=False)
    uid: int | None = None
    uidvalidity: int | None = None
    uidl: str | None = None
    internaldate: str | None = None  # ISO 8601 with offset
    flags: tuple[str, ...] = ()


def flags_text(flags: Sequence[str]) -> str:
    return " ".join(sorted(set(flags)))


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


def store_blobs(store: BlobStore, messages: Sequence[FetchedMessage]) -> list[BlobRef]:
    """Write every blob durably (one directory fsync per directory for the batch)."""
    refs = [store.put(message.data, defer_dir_sync=True) for message in messages]
    store.sync()
    return refs


def record_messages(session: Session, folder_id: int, messages: Sequence[FetchedMessage],
                    refs: Sequence[BlobRef]) -> list[MessageRow]:
    """Insert rows for blobs already durable; a message already recorded is skipped."""
    shas = {ref.sha256 for ref in refs}
    known_blobs = set(session.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_(shas))))
    rows = []
    for message, ref in zip(messages, refs, strict=True):
        if ref.sha256 not in known_blobs:
            session.add(BlobRow(sha256=ref.sha256, size=ref.size))
            known_blobs.add(ref.sha256)
        if _already_recorded(session, folder_id, message, ref):
            continue
        row = MessageRow(folder_id=folder_id, uid=message.uid, uidvalidity=message.uidvalidity,
                         uidl=message.uidl, sha256=ref.sha256, size=ref.size,
                         internaldate=message.internaldate, flags=flags_text(message.flags),
                         message_id=message_id(message.data))
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


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
                 messages: Sequence[FetchedMessage]) -> list[MessageRow]:
    """Durable blobs, then one transaction for the batch's rows."""
    refs = store_blobs(store, messages)
    with manifest.session() as session:
        return record_messages(session, folder_id, messages, refs)
