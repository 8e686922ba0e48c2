"""The DELE-and-QUIT step of a POP3 session (DESIGN 4.3): settle what an earlier session left
unconfirmed, then DELE only what the policy allows and the archive has proven, with the intent
recorded first and the deletion committed only after QUIT's +OK (RFC 1939 section 6).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from migrator.archive.manifest import MessageRow, SourceDeletionRow, utcnow
from migrator.engine.events import Notice
from migrator.engine.pop3.delete import Deletion, DeletionPlan, plan_deletions
from migrator.errors import ConnectionLost
from migrator.sources.pop3 import Pop3Error, Pop3Session
from migrator.testhook import kill_point

if TYPE_CHECKING:
    from migrator.engine.pop3.pull import Maildrop, Pop3Pull

INBOX = "INBOX"


def reconcile(pull: Pop3Pull, maildrop: Maildrop) -> None:
    """Settle deletions a session left unconfirmed (it died before QUIT's +OK)."""
    now = utcnow()
    settled: Counter[str] = Counter()
    with pull.manifest.session() as session:
        for deletion, uidl in session.execute(
                select(SourceDeletionRow, MessageRow.uidl)
                .join(MessageRow, SourceDeletionRow.archive_message_id == MessageRow.id)
                .where(MessageRow.folder_id == pull.folder_id,
                       SourceDeletionRow.state == "pending")):
            settle_pending(deletion, still_on_server=uidl in maildrop.by_uidl, now=now)
            settled[deletion.state] += 1
    for state, count in settled.items():
        pull.emit(Notice("warning", f"{count} deletion(s) left unconfirmed by an earlier "
                                    f"session are now {state}", pull.name))

def delete_safe(pull: Pop3Pull, session: Pop3Session, maildrop: Maildrop) -> None:
    plan = _plan(pull, maildrop)
    if not plan.deletions:
        session.quit()
        return
    pending = _record_pending(pull, plan.deletions)
    refused = {}
    numbers = {number: deletion for deletion in plan.deletions
               for number in deletion.numbers}
    for number, reply in session.delete(numbers):
        if isinstance(reply, Pop3Error):
            refused[numbers[number].uidl] = str(reply)
    kill_point("before-quit")
    try:
        session.quit()
    except ConnectionLost as exc:
        pull.result.fail(f"{INBOX}: {len(pending)} deletion(s) not confirmed ({exc}): the "
                         "server deletes nothing without QUIT's +OK; the next run checks")
        return
    kill_point("after-quit")
    _record_committed(pull, pending, refused)

def _plan(pull: Pop3Pull, maildrop: Maildrop) -> DeletionPlan:
    assert pull.folder_id is not None
    with pull.manifest.session() as session:
        plan = plan_deletions(
            session, pull.account, pull.folder_id, pull.store, maildrop.by_uidl, utcnow(),
            check_sizes=pull.sizes_exact)
    for refusal in plan.refusals:
        if refusal.problem:
            where = f"{INBOX} UIDL {refusal.uidl}: " if refusal.uidl else ""
            pull.result.fail(f"{where}{refusal.reason}")
        pull.result.counts["kept"] += 1
    return plan

def _record_pending(pull: Pop3Pull, deletions: Iterable[Deletion]) -> dict[str, int]:
    """Write the intent (state pending) durably before any DELE is sent."""
    with pull.manifest.session() as session:
        rows = {d.uidl: SourceDeletionRow(archive_message_id=d.archive_message_id,
                                          state="pending", reason=d.reason) for d in deletions}
        session.add_all(rows.values())
        session.flush()
        return {uidl: row.id for uidl, row in rows.items()}

def _record_committed(pull: Pop3Pull, pending: dict[str, int], refused: dict[str, str]) -> None:
    now = utcnow()
    with pull.manifest.session() as session:
        for uidl, row_id in pending.items():
            row = session.get_one(SourceDeletionRow, row_id)
            if uidl in refused:
                row.state = "abandoned"
                row.reason += f"; DELE refused: {refused[uidl]}"
                pull.result.fail(f"{INBOX} UIDL {uidl}: DELE refused: {refused[uidl]}")
                continue
            row.state, row.committed_at = "committed", now
            session.get_one(MessageRow, row.archive_message_id).gone_at = now
            pull.result.counts["deleted"] += 1


def settle_pending(deletion: SourceDeletionRow, *, still_on_server: bool,
                   now: datetime) -> None:
    """A pending deletion is committed only if the server no longer has the message."""
    if still_on_server:
        deletion.state = "abandoned"
        deletion.reason += ("; still on the server at the next session (that session ended "
                            "before QUIT's +OK): not deleted")
    else:
        deletion.state, deletion.committed_at = "committed", now
        deletion.reason += "; confirmed gone from the server at the next session"
