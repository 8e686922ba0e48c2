"""The manifest side of an import: folder rows, known keys, batch rows, gone marks.

A file source's key goes where POP3 keeps its UIDL (`messages.uidl`): the per-message source
identity, unique within a folder. Rows are inserted with Core executemany after their blobs
are durable (the archive writer's order), and a key already recorded is skipped, so a run
resumed after a kill adds nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from migrator.archive.blob_rows import insert_blobs
from migrator.archive.manifest import FolderRow, MessageRow, utcnow
from migrator.archive.writer import Written

MESSAGES = cast(Table, MessageRow.__table__)
CHUNK = 500  # parameters per IN (...) query, well under SQLite's limit
KEY_LIMIT = 200  # messages.uidl is VARCHAR(200)
DELIMITER = "/"  # file sources name folder levels with "/"


@dataclass(frozen=True)
class Imported:
    """What a message's row needs besides its blob."""

    key: str
    internaldate: str  # ISO 8601, UTC
    flags: str  # flags_text


Stored = Written[Imported]


@dataclass
class Known:
    """An archived message of the folder: its row, flags, and whether it is marked gone."""

    row_id: int
    flags: str
    gone: bool


def stored_key(key: str) -> str:
    """The key as the manifest keeps it: a reader's key, or its SHA-256 if too long."""
    if len(key) <= KEY_LIMIT:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def sync_folders(session: Session, account_id: int, present: set[str],
                 selected: Sequence[str]) -> dict[str, int]:
    """Rows for the selected folders (made un-gone); folders no longer in the files are
    marked gone. Returns folder ids by name."""
    rows = {row.name: row for row in session.scalars(
        select(FolderRow).where(FolderRow.account_id == account_id))}
    now = utcnow()
    for name, row in rows.items():
        if name not in present and row.gone_at is None:
            row.gone_at = now
    for name in selected:
        if name not in rows:
            rows[name] = FolderRow(account_id=account_id, name=name, raw_name=name)
            session.add(rows[name])
        row = rows[name]
        row.delimiter = DELIMITER
        row.gone_at = None
    session.flush()
    return {name: rows[name].id for name in selected}


def known_messages(session: Session, folder_id: int) -> dict[str, Known]:
    return {key: Known(row_id, flags or "", gone is not None)
            for row_id, key, flags, gone in session.execute(
                select(MESSAGES.c.id, MESSAGES.c.uidl, MESSAGES.c.flags, MESSAGES.c.gone_at)
                .where(MESSAGES.c.folder_id == folder_id))
            if key is not None}


def record_rows(session: Session, folder_id: int, stored: Sequence[Stored]) -> int:
    """Insert the rows of messages whose blobs are durable, skipping keys already recorded;
    returns rows added."""
    keys = sorted({item.key.key for item in stored})
    seen: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        seen.update(session.scalars(select(MESSAGES.c.uidl).where(
            MESSAGES.c.folder_id == folder_id, MESSAGES.c.uidl.in_(keys[start:start + CHUNK]))))
    insert_blobs(session, {item.ref.sha256: item.ref.size for item in stored})
    now = utcnow()
    rows = []
    for item in stored:
        message = item.key
        if message.key in seen:
            continue
        seen.add(message.key)
        rows.append({"folder_id": folder_id, "uidl": message.key, "sha256": item.ref.sha256,
                     "size": item.ref.size, "internaldate": message.internaldate,
                     "flags": message.flags, "message_id": item.message_id,
                     "first_seen": now})
    if rows:
        session.execute(insert(MESSAGES), rows)
    return len(rows)


def rekey(session: Session, keys: dict[int, str]) -> None:
    """Rows found under a reader's former key get its key of now (row id -> key)."""
    for row_id, key in keys.items():
        session.execute(update(MESSAGES).where(MESSAGES.c.id == row_id).values(uidl=key))


def update_known(session: Session, flags: dict[int, str], back: list[int],
                 gone: list[int]) -> None:
    """New flags of archived messages, and messages back in or gone from the files."""
    for row_id, text in flags.items():
        session.execute(update(MESSAGES).where(MESSAGES.c.id == row_id).values(flags=text))
    now = utcnow()
    for ids, value in ((back, None), (gone, now)):
        for start in range(0, len(ids), CHUNK):
            session.execute(update(MESSAGES).where(MESSAGES.c.id.in_(ids[start:start + CHUNK]))
                            .values(gone_at=value))


def finish_folder(session: Session, folder_id: int, count: int) -> None:
    session.execute(update(FolderRow).where(FolderRow.id == folder_id).values(
        message_count=count, last_synced_at=utcnow()))
