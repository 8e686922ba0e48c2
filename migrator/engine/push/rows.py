"""The manifest side of push: what is left to push, intents before APPEND, outcomes after.

A push row moves intent -> done (target UID known) | refused | failed. An intent committed
without an outcome means "sent, outcome unknown": the next round looks for the message at
the target before sending it again (see `reconcile`). Intents and outcomes are written in
one transaction per pipeline window, never one per message or one per session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from migrator.archive.manifest import FailureRow, FolderRow, MessageRow, PushRow, utcnow
from migrator.engine.push.candidate import DONE, FAILED, INTENT, Candidate, candidate
from migrator.engine.push.candidate import REFUSED as REFUSED  # re-exported: verify uses it
from migrator.engine.push.driver_rows import DriverRows

if TYPE_CHECKING:
    from migrator.engine.push.context import PushContext


_COLUMNS = (MessageRow.id, MessageRow.folder_id, MessageRow.sha256, MessageRow.size,
            MessageRow.internaldate, MessageRow.flags, MessageRow.message_id, PushRow.state,
            PushRow.target_folder, PushRow.target_uidvalidity, PushRow.target_uid)


def _candidate(row: Row[Any]) -> Candidate:
    return candidate(tuple(row))


def _with_push(target: str) -> Select[*tuple[Any, ...]]:
    return select(*_COLUMNS).outerjoin(
        PushRow, and_(PushRow.archive_message_id == MessageRow.id, PushRow.target == target))


def pending(session: Session, target: str, folder_ids: Iterable[int], after_id: int,
            limit: int) -> list[Candidate]:
    """Live messages never pushed (or failed before), in id order after `after_id`."""
    query = (_with_push(target)
             .where(MessageRow.folder_id.in_(list(folder_ids)), MessageRow.gone_at.is_(None),
                    MessageRow.id > after_id,
                    or_(PushRow.id.is_(None), PushRow.state == FAILED))
             .order_by(MessageRow.id).limit(limit))
    return [_candidate(row) for row in session.execute(query)]


def in_state(session: Session, target: str, folder_ids: Iterable[int],
             states: Sequence[str | None], live_only: bool = True,
             target_folder: str | None = None) -> list[Candidate]:
    """Messages of these folders whose push row is in one of `states` (None: no row), and
    with `target_folder`, only those whose push row names that target folder."""
    state: ColumnElement[str] | InstrumentedAttribute[str] = PushRow.state
    if target_folder is not None:
        # read by source folder: expressions (here and below) keep SQLite from walking every
        # push row of the target (ix_pushes_target_state) once per target folder
        state = func.coalesce(PushRow.state, "")
    conditions = [state.in_([s for s in states if s is not None])]
    if None in states:
        conditions.append(PushRow.id.is_(None))
    query = _with_push(target).where(MessageRow.folder_id.in_(list(folder_ids)), or_(*conditions))
    if live_only:
        query = query.where(MessageRow.gone_at.is_(None))
    if target_folder is not None:
        query = query.where(func.coalesce(PushRow.target_folder, "") == target_folder)
    return [_candidate(row) for row in session.execute(query.order_by(MessageRow.id))]


def done_sources(session: Session, target: str, folder_ids: Iterable[int]) -> dict[str, set[int]]:
    """Target folder -> the source folders (of `folder_ids`) with live messages pushed there
    (done): one pass over the push rows, so each target folder's rows can then be read
    alone, by source folder, without holding every row of the account at once."""
    query = (select(PushRow.target_folder, MessageRow.folder_id).distinct()
             .join(MessageRow, MessageRow.id == PushRow.archive_message_id)
             .where(PushRow.target == target, PushRow.state == DONE,
                    MessageRow.folder_id.in_(list(folder_ids)), MessageRow.gone_at.is_(None)))
    sources: dict[str, set[int]] = {}
    for folder, folder_id in session.execute(query):
        sources.setdefault(str(folder or ""), set()).add(int(folder_id))
    return sources


def expected_in(session: Session, target: str, target_folder: str, planned: Iterable[int],
                pushed_from: Iterable[int]) -> list[Candidate]:
    """Live messages expected in `target_folder`: pushed there (done), or from a source
    folder the plan sends there (`planned`) and not pushed (done) anywhere else.
    `pushed_from`: the source folders with done rows there (see `done_sources`)."""
    planned = list(planned)
    not_done_elsewhere = or_(PushRow.id.is_(None), PushRow.state != DONE,
                             func.coalesce(PushRow.target_folder, "") == "")
    query = (_with_push(target)
             .where(MessageRow.folder_id.in_(sorted({*planned, *pushed_from})),
                    MessageRow.gone_at.is_(None),
                    or_(and_(PushRow.state == DONE, PushRow.target_folder == target_folder),
                        and_(MessageRow.folder_id.in_(planned), not_done_elsewhere)))
             .order_by(MessageRow.id))
    return [_candidate(row) for row in session.execute(query)]


def live_count(session: Session, folder_ids: Iterable[int]) -> int:
    """Live archived messages of these folders."""
    return int(session.scalar(select(func.count(MessageRow.id)).where(
        MessageRow.folder_id.in_(list(folder_ids)), MessageRow.gone_at.is_(None))) or 0)


def done_uids(session: Session, target: str, target_folder: str,
              uidvalidity: int | None) -> set[int]:
    """Target UIDs that live archived messages already account for in a target folder."""
    query = (select(PushRow.target_uid)
             .join(MessageRow, MessageRow.id == PushRow.archive_message_id)
             .where(PushRow.target == target, PushRow.target_folder == target_folder,
                    PushRow.state == DONE, PushRow.target_uid.is_not(None),
                    MessageRow.gone_at.is_(None)))
    if uidvalidity is not None:
        query = query.where(PushRow.target_uidvalidity == uidvalidity)
    return {int(uid) for uid in session.scalars(query) if uid is not None}


def done_counts(session: Session, target: str) -> dict[str, int]:
    """Target folder -> how many push rows are done there (what a re-check will list)."""
    query = (select(PushRow.target_folder, func.count())
             .where(PushRow.target == target, PushRow.state == DONE)
             .group_by(PushRow.target_folder))
    return {str(folder): int(count) for folder, count in session.execute(query)}


def pins(session: Session, target: str, account_id: int) -> dict[str, str]:
    """Source folder -> target folder of earlier pushes (the latest, if it ever changed)."""
    query = (select(FolderRow.name, PushRow.target_folder, func.max(PushRow.id))
             .join(MessageRow, MessageRow.folder_id == FolderRow.id)
             .join(PushRow, PushRow.archive_message_id == MessageRow.id)
             .where(FolderRow.account_id == account_id, PushRow.target == target,
                    PushRow.state.in_([DONE, INTENT]))
             .group_by(FolderRow.name, PushRow.target_folder)
             .order_by(func.max(PushRow.id)))
    return {str(name): str(folder) for name, folder, _ in session.execute(query)}


def write_intents(session: Session, target: str, items: Sequence[tuple[int, str]]) -> None:
    """Record 'about to APPEND' for (message id, target folder) pairs, before sending.

    Through the driver, many parameter sets per statement (`driver_rows.py`): one round of
    SQL per window, not per row.
    """
    if not items:
        return
    wanted = dict(items)
    rows = DriverRows(session.connection())
    existing = rows.existing(target, list(wanted))
    now = utcnow()
    rows.insert_intents(target, [(m, f) for m, f in wanted.items() if m not in existing], now)
    rows.intents_again(target, [(m, f) for m, f in wanted.items() if m in existing], now)


@dataclass(frozen=True)
class Outcome:
    """What became of one message: the new state of its push row."""

    archive_message_id: int  # messages.id
    state: str
    target_folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    note: str | None = None


def write_outcomes(session: Session, target: str, outcomes: Sequence[Outcome]) -> None:
    """Record outcomes of APPENDs (or of reconciliation) on their push rows."""
    if not outcomes:
        return
    DriverRows(session.connection()).outcomes(
        target, [(o.archive_message_id, o.state, o.note, o.uidvalidity, o.uid, o.target_folder)
                 for o in outcomes], utcnow())


def settle_without_append(ctx: PushContext, outcomes: Sequence[Outcome], counter: str) -> None:
    """Record messages settled with no APPEND (already at the target, or a merged copy of one
    sent): their rows, the run's `counter`, and progress."""
    if not outcomes:
        return
    with ctx.manifest.session() as session:
        insert_done(session, ctx.target, outcomes)
    ctx.count(counter, len(outcomes))
    ctx.advanced(len(outcomes), 0)


def insert_done(session: Session, target: str, outcomes: Sequence[Outcome]) -> None:
    """Rows for messages found at the target without being sent ('already there')."""
    write_intents(session, target,
                  [(o.archive_message_id, o.target_folder or "") for o in outcomes])
    write_outcomes(session, target, outcomes)


def record_failure(session: Session, run_id: int | None, account_id: int, folder: str,
                   ref: str, reason: str) -> None:
    session.add(FailureRow(run_id=run_id, account_id=account_id, stage="push", folder=folder,
                           ref=ref, reason=reason))


def target_counts(session: Session, target: str, folder_ids: Iterable[int]) -> dict[str, int]:
    """How many live messages of these folders are in each push state ('new': none yet)."""
    query = (select(PushRow.state, func.count(MessageRow.id)).select_from(MessageRow)
             .outerjoin(PushRow, and_(PushRow.archive_message_id == MessageRow.id,
                                      PushRow.target == target))
             .where(MessageRow.folder_id.in_(list(folder_ids)), MessageRow.gone_at.is_(None))
             .group_by(PushRow.state))
    return {str(state or "new"): int(count) for state, count in session.execute(query)}


def pending_totals(session: Session, target: str, folder_ids: Iterable[int]) -> tuple[int, int]:
    """(messages, bytes) still to push from these folders."""
    query = (select(func.count(MessageRow.id), func.coalesce(func.sum(MessageRow.size), 0))
             .select_from(MessageRow)
             .outerjoin(PushRow, and_(PushRow.archive_message_id == MessageRow.id,
                                      PushRow.target == target))
             .where(MessageRow.folder_id.in_(list(folder_ids)), MessageRow.gone_at.is_(None),
                    or_(PushRow.id.is_(None), PushRow.state == FAILED)))
    count, size = session.execute(query).one()
    return int(count), int(size)


def latest_intent(session: Session, target: str) -> datetime | None:
    """When the newest unsettled intent was written (UTC, naive)."""
    return session.scalar(select(func.max(PushRow.updated_at))
                          .where(PushRow.target == target, PushRow.state == INTENT))


def message_ids(session: Session, folder_ids: Sequence[int]) -> set[str]:
    """Message-IDs of the live archived messages of these folders."""
    query = select(MessageRow.message_id).where(MessageRow.folder_id.in_(list(folder_ids)),
                                                MessageRow.gone_at.is_(None),
                                                MessageRow.message_id.is_not(None))
    return {str(mid) for mid in session.scalars(query)}
