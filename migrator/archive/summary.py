"""What the manifest holds, summarised for `migrator status`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from migrator.archive.manifest import AccountRow, FolderRow, MessageRow, PushRow, RunRow
from migrator.timestamps import from_manifest


@dataclass
class FolderSummary:
    name: str
    messages: int
    bytes: int
    gone: int
    last_synced_at: datetime | None


@dataclass
class RunSummary:
    id: int
    account: str | None
    command: str
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]


@dataclass
class AccountSummary:
    name: str
    source_kind: str
    folders: list[FolderSummary] = field(default_factory=list)
    pushed: int = 0
    last_run: RunSummary | None = None

    @property
    def messages(self) -> int:
        return sum(folder.messages for folder in self.folders)

    @property
    def bytes(self) -> int:
        return sum(folder.bytes for folder in self.folders)


def summarise(session: Session, recent_runs: int = 5) -> tuple[list[AccountSummary],
                                                                list[RunSummary]]:
    accounts = {row.id: AccountSummary(row.name, row.source_kind)
                for row in session.scalars(select(AccountRow).order_by(AccountRow.name))}
    per_folder = (
        select(FolderRow.account_id, FolderRow.name, FolderRow.last_synced_at,
               func.count(MessageRow.id), func.coalesce(func.sum(MessageRow.size), 0),
               func.count(MessageRow.gone_at))
        .outerjoin(MessageRow, MessageRow.folder_id == FolderRow.id)
        .group_by(FolderRow.id).order_by(FolderRow.name)
    )
    for account_id, name, synced, count, size, gone in session.execute(per_folder):
        accounts[account_id].folders.append(FolderSummary(name, count, int(size), gone,
                                                          from_manifest(synced)))
    pushed = (
        select(FolderRow.account_id, func.count(PushRow.id))
        .join(MessageRow, PushRow.archive_message_id == MessageRow.id)
        .join(FolderRow, MessageRow.folder_id == FolderRow.id)
        .where(PushRow.state == "done").group_by(FolderRow.account_id)
    )
    for account_id, count in session.execute(pushed):
        accounts[account_id].pushed = count
    names = {account_id: summary.name for account_id, summary in accounts.items()}
    runs = [_run(row, names) for row in session.scalars(
        select(RunRow).order_by(RunRow.id.desc()).limit(recent_runs))]
    for account_id, summary in accounts.items():
        last = session.scalars(select(RunRow).where(RunRow.account_id == account_id)
                               .order_by(RunRow.id.desc()).limit(1)).first()
        summary.last_run = _run(last, names) if last else None
    return list(accounts.values()), runs


def _run(row: RunRow, names: dict[int, str]) -> RunSummary:
    account = names.get(row.account_id) if row.account_id is not None else None
    return RunSummary(row.id, account, row.command, row.outcome, from_manifest(row.started_at),
                      from_manifest(row.finished_at), json.loads(row.counts or "{}"))
