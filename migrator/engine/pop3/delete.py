"""Which archived POP3 messages may leave the server, and why that is safe (DESIGN 4.3);
safe_delete.py carries the plan out.

Nothing is deleted without an explicit policy. Under `after-archive` a message qualifies once
every archived copy recorded under its UIDL re-hashes to its name and it has been in the
archive for `delete_after_days`; `after-push` also needs the push engine's confirmation
(a PushRow in state "done" at the account's target) for each of those copies.
This module only decides; the pull engine records the decision and sends DELE.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from migrator.archive.blobs import BlobStore
from migrator.archive.manifest import MessageRow, PushRow, SourceDeletionRow
from migrator.config import Account, DeletePolicy
from migrator.sources.pop3 import MaildropEntry
from migrator.targets import target_identity

NEVER = "never"
AFTER_ARCHIVE = "after-archive"
AFTER_PUSH = "after-push"


@dataclass(frozen=True)
class Deletion:
    """A message that may be deleted, with the reason recorded in the manifest."""

    uidl: str
    numbers: tuple[int, ...]  # message numbers in this session (one, unless the server repeats)
    archive_message_id: int  # the MessageRow of the content the server serves now (newest row)
    reason: str


@dataclass(frozen=True)
class Refusal:
    """A message the policy would delete but must keep; `problem` means it needs attention."""

    uidl: str
    reason: str
    problem: bool = False


@dataclass
class DeletionPlan:
    deletions: list[Deletion]
    refusals: list[Refusal]


def size_matches(listed: int, stored: int) -> bool:
    """LIST may leave out the line ending a server adds to a message that lacked one."""
    return stored - listed in (0, 1, 2)


def plan_deletions(session: Session, account: Account, folder_id: int, store: BlobStore,
                   on_server: Mapping[str, Sequence[MaildropEntry]], now: datetime, *,
                   check_sizes: bool = True) -> DeletionPlan:
    """Decide, for every archived message still on the server, whether it may go."""
    policy = account.source.delete
    plan = DeletionPlan([], [])
    if policy.mode == NEVER or not on_server:
        return plan
    if policy.mode == AFTER_PUSH and account.target is None:
        plan.refusals.append(Refusal("", "delete = \"after-push\" but the account has no "
                                     "target: nothing is deleted", problem=True))
        return plan
    target = target_identity(account.target) if account.target is not None else None
    for uidl, rows in _archived_on_server(session, folder_id, on_server).items():
        verdict = _judge(session, store, policy, target, rows, on_server[uidl], now,
                         check_sizes)
        if isinstance(verdict, Refusal):
            plan.refusals.append(verdict)
        else:
            plan.deletions.append(verdict)
    return plan


def _archived_on_server(session: Session, folder_id: int,
                        on_server: Mapping[str, Sequence[MaildropEntry]]
                        ) -> dict[str, list[MessageRow]]:
    """Rows still on the server and not already deleted by us, grouped by UIDL."""
    deleted = select(SourceDeletionRow.archive_message_id).where(
        SourceDeletionRow.state.in_(("pending", "committed")))
    rows = session.scalars(
        select(MessageRow).where(MessageRow.folder_id == folder_id,
                                 MessageRow.uidl.is_not(None),
                                 MessageRow.id.not_in(deleted))
        .order_by(MessageRow.id))
    grouped: dict[str, list[MessageRow]] = defaultdict(list)
    for row in rows:
        if row.uidl in on_server:
            grouped[str(row.uidl)].append(row)
    return grouped


def _judge(session: Session, store: BlobStore, policy: DeletePolicy, target: str | None,
           rows: list[MessageRow], listed: Sequence[MaildropEntry], now: datetime,
           check_sizes: bool) -> Deletion | Refusal:
    """Every copy recorded under this UIDL must be safe; the newest is what the server has."""
    uidl = str(rows[0].uidl)
    newest = rows[-1]
    oldest_allowed = now - timedelta(days=policy.after_days)
    if any(row.first_seen > oldest_allowed for row in rows):
        return Refusal(uidl, f"archived less than {policy.after_days} days ago")
    if check_sizes and not all(any(size_matches(item.size, row.size) for row in rows)
                               for item in listed):
        return Refusal(uidl, "the server's size differs from every archived copy")
    checked = []
    for sha in dict.fromkeys(row.sha256 for row in rows):
        state = store.check(sha)
        if state != "ok":
            return Refusal(uidl, f"archived copy {sha} is {state}: not deleted", problem=True)
        checked.append(sha[:16])
    reason = (f"{policy.mode}: archived {newest.first_seen:%Y-%m-%d %H:%M:%S} UTC "
              f"(policy: after {policy.after_days} days); blob {', '.join(checked)} "
              "re-hashed ok")
    if policy.mode == AFTER_PUSH:
        assert target is not None
        pushed = _pushed(session, rows, target)
        if pushed is None:
            return Refusal(uidl, f"not yet confirmed at target {target}")
        reason += f"; confirmed at target {target}: {pushed}"
    return Deletion(uidl, tuple(item.number for item in listed), newest.id, reason)


def _pushed(session: Session, rows: list[MessageRow], target: str) -> str | None:
    """Where the target holds every copy, or None if any copy is not confirmed there."""
    found = []
    for row in rows:
        push = session.scalars(select(PushRow).where(
            PushRow.archive_message_id == row.id, PushRow.target == target,
            PushRow.state == "done")).first()
        if push is None:
            return None
        found.append(f"{push.target_folder} UID {push.target_uid}"
                     if push.target_uid is not None else push.target_folder)
    return "; ".join(found)
