"""The manifest side of an IMAP pull: folder state, known messages, batch rows, failures.

Hot-path statements are SQLAlchemy Core executemany (a batch of hundreds of rows costs one
statement, not hundreds of ORM objects). Every function takes an open session; the caller
owns the transaction, so a batch's rows commit together, after its blobs are durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.orm import Session

from migrator.archive.blob_rows import insert_blobs
from migrator.archive.driver_sql import DriverSQL
from migrator.archive.manifest import FailureRow, FolderRow, MessageRow, utcnow
from migrator.archive.writer import Written
from migrator.engine.imap.jobs import Received
from migrator.engine.imap.plan import FolderState, Known
from migrator.sources.imap import Folder, FolderStatus

MESSAGES = cast(Table, MessageRow.__table__)
STAGE = "pull"
StoredMessage = Written[Received]  # a fetched message whose blob is durable


def failure_ref(uid: int) -> str:
    return f"UID {uid}"


def _uid_of(ref: str | None) -> int | None:
    if ref and ref.startswith("UID ") and ref[4:].isdigit():
        return int(ref[4:])
    return None


# -- folders --------------------------------------------------------------------------------
def folder_rows(session: Session, account_id: int) -> dict[str, FolderRow]:
    rows = session.scalars(select(FolderRow).where(FolderRow.account_id == account_id))
    return {row.name: row for row in rows}


def sync_folders(session: Session, account_id: int, present: set[str],
                 selected: Sequence[Folder]) -> dict[str, int]:
    """Create rows for newly selected folders, mark folders that left the server gone
    (`present`: every name LIST showed); return folder ids by name for `selected`."""
    rows = folder_rows(session, account_id)
    now = utcnow()
    for name, row in rows.items():
        if name not in present and row.gone_at is None:
            row.gone_at = now
    for folder in selected:
        if folder.name not in rows:
            rows[folder.name] = FolderRow(account_id=account_id, name=folder.name,
                                          raw_name=folder.raw_name)
            session.add(rows[folder.name])
        row = rows[folder.name]
        row.raw_name = folder.raw_name
        row.delimiter = folder.delimiter
        row.special_use = folder.special_use
        row.gone_at = None
    session.flush()
    return {folder.name: rows[folder.name].id for folder in selected}


def folder_state(session: Session, account_id: int, row: FolderRow,
                 failed: Mapping[str, set[int]] | None = None) -> FolderState:
    """`failed`: every folder's open failures (`failed_uids_by_folder`), to spare a query
    per folder."""
    uids = failed.get(row.name, set()) if failed is not None \
        else failed_uids(session, account_id, row.name)
    return FolderState(folder_id=row.id, uidvalidity=row.uidvalidity, uidnext=row.uidnext,
                       highestmodseq=row.highestmodseq, message_count=row.message_count,
                       failed_uids=frozenset(uids))


def finish_folder(session: Session, folder_id: int, status: FolderStatus,
                  close_remap: bool) -> int:
    """Record the state a complete sync saw; after a finished re-map, rows still under an
    old UIDVALIDITY are gone. Returns how many rows that marked gone."""
    session.execute(update(FolderRow).where(FolderRow.id == folder_id).values(
        uidvalidity=status.uidvalidity, uidnext=status.uidnext,
        highestmodseq=status.highestmodseq, message_count=status.messages,
        last_synced_at=utcnow()))
    if not close_remap:
        return 0
    result = session.execute(update(MESSAGES).where(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.gone_at.is_(None),
        MESSAGES.c.uidvalidity.is_distinct_from(status.uidvalidity),
    ).values(gone_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


# -- messages -------------------------------------------------------------------------------
def known_messages(session: Session, folder_id: int, uidvalidity: int | None) -> dict[int, Known]:
    query = select(MESSAGES.c.uid, MESSAGES.c.flags, MESSAGES.c.gone_at).where(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.uidvalidity == uidvalidity)
    return {uid: Known(flags or "", gone is not None)
            for uid, flags, gone in session.execute(query) if uid is not None}


def has_stale_rows(session: Session, folder_id: int, uidvalidity: int | None) -> bool:
    """Live rows under another UIDVALIDITY: a re-map is due (or was interrupted)."""
    query = select(MESSAGES.c.id).where(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.gone_at.is_(None),
        MESSAGES.c.uidvalidity.is_distinct_from(uidvalidity)).limit(1)
    return session.execute(query).first() is not None


def update_flags(session: Session, folder_id: int, uidvalidity: int | None,
                 flags: Mapping[int, str]) -> None:
    if not flags:
        return
    statement = update(MESSAGES).where(and_(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.uidvalidity == uidvalidity,
        MESSAGES.c.uid == bindparam("b_uid"))).values(flags=bindparam("b_flags"))
    session.execute(statement, [{"b_uid": uid, "b_flags": text} for uid, text in flags.items()])


def mark_gone(session: Session, folder_id: int, uidvalidity: int | None,
              uids: Iterable[int]) -> None:
    """Messages that left the source keep their rows and blobs; they only get `gone_at`."""
    now = utcnow()
    params = [{"b_uid": uid} for uid in uids]
    if not params:
        return
    statement = update(MESSAGES).where(and_(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.uidvalidity == uidvalidity,
        MESSAGES.c.uid == bindparam("b_uid"), MESSAGES.c.gone_at.is_(None))).values(gone_at=now)
    session.execute(statement, params)


def mark_back(session: Session, folder_id: int, uidvalidity: int | None,
              uids: Iterable[int]) -> None:
    """Messages marked gone that the source lists again are live once more."""
    params = [{"b_uid": uid} for uid in uids]
    if not params:
        return
    statement = update(MESSAGES).where(and_(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.uidvalidity == uidvalidity,
        MESSAGES.c.uid == bindparam("b_uid"), MESSAGES.c.gone_at.is_not(None))).values(
            gone_at=None)
    session.execute(statement, params)


@dataclass(frozen=True)
class BatchCounts:
    inserted: int = 0
    moved: int = 0  # re-mapped rows (changed UIDVALIDITY)
    new_blobs: int = 0


def record_batch(session: Session, folder_id: int, uidvalidity: int | None,
                 messages: Sequence[StoredMessage], remap: bool) -> BatchCounts:
    """Rows for messages whose blobs are durable. In a re-map an existing row with the same
    content under an old UIDVALIDITY is moved to the new UID instead of duplicated."""
    if not messages:
        return BatchCounts()
    new_blobs = insert_blobs(session, {m.ref.sha256: m.ref.size for m in messages})
    uids = [m.key.uid for m in messages]
    present = set(session.scalars(select(MESSAGES.c.uid).where(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.uidvalidity == uidvalidity,
        MESSAGES.c.uid.in_(uids))))
    rows: list[tuple[object, ...]] = []
    moved = 0
    for message in messages:
        received = message.key
        if received.uid in present:
            continue
        present.add(received.uid)
        if remap and _move_stale_row(session, folder_id, uidvalidity, message):
            moved += 1
            continue
        rows.append((folder_id, uidvalidity, received.uid, message.ref.sha256,
                     message.ref.size, received.internaldate, received.flags,
                     message.message_id))
    _insert_messages(session, rows)
    return BatchCounts(len(rows), moved, new_blobs)


def _insert_messages(session: Session, rows: list[tuple[object, ...]]) -> None:
    """A batch's new message rows in one statement through the driver (a row per message:
    the pull's hottest write, see `archive/driver_sql.py`), all seen first now."""
    sql = DriverSQL(session.connection(), MESSAGES.c.first_seen)
    now = sql.when(utcnow())
    sql.many("INSERT INTO messages (folder_id, uidvalidity, uid, sha256, size, internaldate, "
             f"flags, message_id, first_seen) VALUES ({sql.marks(9)})",
             [(*row, now) for row in rows])


def _move_stale_row(session: Session, folder_id: int, uidvalidity: int | None,
                    message: StoredMessage) -> bool:
    row_id = session.scalars(select(MESSAGES.c.id).where(
        MESSAGES.c.folder_id == folder_id, MESSAGES.c.sha256 == message.ref.sha256,
        MESSAGES.c.gone_at.is_(None),
        MESSAGES.c.uidvalidity.is_distinct_from(uidvalidity)).limit(1)).first()
    if row_id is None:
        return False
    received = message.key
    session.execute(update(MESSAGES).where(MESSAGES.c.id == row_id).values(
        uidvalidity=uidvalidity, uid=received.uid, flags=received.flags,
        internaldate=received.internaldate))
    return True


# -- failures -------------------------------------------------------------------------------
def failed_uids(session: Session, account_id: int, folder: str) -> set[int]:
    refs = session.scalars(select(FailureRow.ref).where(
        FailureRow.account_id == account_id, FailureRow.stage == STAGE,
        FailureRow.folder == folder, FailureRow.resolved_at.is_(None)))
    return {uid for ref in refs if (uid := _uid_of(ref)) is not None}


def failed_uids_by_folder(session: Session, account_id: int) -> dict[str, set[int]]:
    """`failed_uids` of every folder, in one query."""
    rows = session.execute(select(FailureRow.folder, FailureRow.ref).where(
        FailureRow.account_id == account_id, FailureRow.stage == STAGE,
        FailureRow.resolved_at.is_(None)))
    found: dict[str, set[int]] = {}
    for folder, ref in rows:
        if (uid := _uid_of(ref)) is not None:
            found.setdefault(str(folder), set()).add(uid)
    return found


def record_failures(session: Session, run_id: int | None, account_id: int, folder: str,
                    reasons: Mapping[int, str]) -> None:
    """One open failure per message: a repeat in a later run updates it."""
    for uid, reason in reasons.items():
        _open_failure(session, run_id, account_id, folder, failure_ref(uid), reason)
    session.flush()


def record_folder_failure(session: Session, run_id: int | None, account_id: int, folder: str,
                          reason: str) -> None:
    _open_failure(session, run_id, account_id, folder, None, reason)
    session.flush()


def _open_failure(session: Session, run_id: int | None, account_id: int, folder: str,
                  ref: str | None, reason: str) -> None:
    same_ref = FailureRow.ref == ref if ref is not None else FailureRow.ref.is_(None)
    row = session.scalars(select(FailureRow).where(
        FailureRow.account_id == account_id, FailureRow.stage == STAGE,
        FailureRow.folder == folder, FailureRow.resolved_at.is_(None), same_ref)).first()
    if row is None:
        session.add(FailureRow(run_id=run_id, account_id=account_id, stage=STAGE,
                               folder=folder, ref=ref, reason=reason))
    else:
        row.run_id, row.reason, row.at = run_id, reason, utcnow()


def resolve_failures(session: Session, account_id: int, folder: str,
                     uids: Iterable[int] | None = None) -> None:
    """Close open failures of `uids` in `folder`, or every one of the folder's when None."""
    condition = [FailureRow.account_id == account_id, FailureRow.stage == STAGE,
                 FailureRow.folder == folder, FailureRow.resolved_at.is_(None)]
    if uids is not None:
        refs = [failure_ref(uid) for uid in uids]
        if not refs:
            return
        condition.append(FailureRow.ref.in_(refs))
    session.execute(update(FailureRow).where(*condition).values(resolved_at=utcnow()))


def resolve_folder_failures(session: Session, account_id: int, folders: Sequence[str]) -> None:
    """Folder-level failures (e.g. EXAMINE refused) of folders that worked this time."""
    if not folders:
        return
    session.execute(update(FailureRow).where(
        FailureRow.account_id == account_id, FailureRow.stage == STAGE,
        FailureRow.folder.in_(folders), FailureRow.ref.is_(None),
        FailureRow.resolved_at.is_(None)).values(resolved_at=utcnow()))
