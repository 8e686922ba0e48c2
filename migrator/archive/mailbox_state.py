"""Per-mailbox progress for `batch status`, read from the manifest's runs and rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from migrator.archive.manifest import AccountRow, FolderRow, MessageRow, PushRow, RunRow
from migrator.timestamps import from_manifest


@dataclass
class MailboxState:
    account: str
    state: str = "not started"  # not started | running | complete | partial | failed
    archived: int = 0
    archived_bytes: int = 0
    source_total: int | None = None
    pushed: int = 0
    errors: list[str] = field(default_factory=list)
    last_run: datetime | None = None


def mailbox_state(session: Session, account: str, has_target: bool) -> MailboxState:
    state = MailboxState(account)
    row = session.scalars(select(AccountRow).where(AccountRow.name == account)).first()
    if row is None:
        return state
    state.archived, state.archived_bytes = session.execute(
        select(func.count(MessageRow.id), func.coalesce(func.sum(MessageRow.size), 0))
        .join(FolderRow, MessageRow.folder_id == FolderRow.id)
        .where(FolderRow.account_id == row.id, MessageRow.gone_at.is_(None))).one()
    state.source_total = session.scalar(
        select(func.sum(FolderRow.message_count))
        .where(FolderRow.account_id == row.id, FolderRow.gone_at.is_(None)))
    state.pushed = session.scalar(
        select(func.count(PushRow.id)).join(MessageRow, PushRow.archive_message_id == MessageRow.id)
        .join(FolderRow, MessageRow.folder_id == FolderRow.id)
        .where(FolderRow.account_id == row.id, PushRow.state == "done")) or 0
    latest = _latest_runs(session, row.id)
    if latest:
        state.last_run = from_manifest(max(run.started_at for run in latest.values()))
        state.state, state.errors = _judge(latest, has_target)
    return state


def _latest_runs(session: Session, account_id: int) -> dict[str, RunRow]:
    latest: dict[str, RunRow] = {}
    for run in session.scalars(select(RunRow).where(RunRow.account_id == account_id)
                               .order_by(RunRow.id)):
        latest[run.command] = run
    return latest


def _judge(latest: dict[str, RunRow], has_target: bool) -> tuple[str, list[str]]:
    errors = [f"{command}: {run.error}" for command, run in latest.items() if run.error]
    for command, run in latest.items():
        failed = json.loads(run.counts or "{}").get("failed", 0)
        if failed:
            errors.append(f"{command}: {failed} messages failed")
    outcomes = {run.outcome for run in latest.values()}
    if "running" in outcomes:
        return "running", errors
    needed = ("migrate",) if has_target else ("pull",)
    if any(latest.get(command) is None for command in needed):
        return "partial", errors
    if any(latest[command].outcome == "failed" for command in needed):
        return "failed", errors
    if all(latest[command].outcome == "ok" for command in needed):
        return "complete", errors
    return "partial", errors
