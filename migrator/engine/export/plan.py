"""What an export covers: the account's archived folders and messages, chosen and keyed.

Every message row is exported, gone from the source or not (it is archived mail). A message
is known in DEST by its key: its SHA-256, plus `.n` for the n-th further row with the same
content in the same folder (the same mail twice in one folder stays twice). Keys depend on
the content only, so they stay the same across runs and even across a rebuilt archive.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from migrator.archive.manifest import AccountRow, FolderRow, MessageRow
from migrator.errors import ExitStatus, MigratorError


class ExportUsageError(MigratorError):
    """The command line names something the archive or DEST cannot give."""

    exit_status = ExitStatus.USAGE


@dataclass(frozen=True)
class Item:
    """One archived message to export into one folder."""

    key: str
    sha256: str
    size: int
    internaldate: datetime | None
    flags: str


@dataclass
class FolderPlan:
    name: str
    delimiter: str | None
    items: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """--since (inclusive) and --before (exclusive) on the message's date."""

    since: datetime | None = None
    before: datetime | None = None

    @property
    def open(self) -> bool:
        return self.since is None and self.before is None

    def admits(self, when: datetime | None) -> bool:
        if self.open:
            return True
        if when is None:
            return False  # no date to compare: outside any window asked for
        return ((self.since is None or when >= self.since)
                and (self.before is None or when < self.before))


def parse_when(text: str) -> datetime:
    """A date (`2024-01-31`, midnight UTC) or ISO 8601 time (UTC unless it has an offset)."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_internaldate(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def plan_export(session: Session, account: str, patterns: list[str],
                window: Window, ids: frozenset[int] | None = None) -> list[FolderPlan]:
    """The folders (by name) and their messages (in archive order) the export covers;
    `ids` (messages.id, as `migrator search` shows them): only those messages.

    Messages without an INTERNALDATE (POP3) stay in the plan whatever the window: their date
    comes from their headers, which the job reads anyway.
    """
    account_id = session.scalars(select(AccountRow.id).where(AccountRow.name == account)).first()
    if account_id is None:
        raise ExportUsageError(f"account {account} has nothing in the archive "
                               f"(run `migrator pull {account}` first)")
    folders = {row.id: FolderPlan(row.name, row.delimiter) for row in session.scalars(
        select(FolderRow).where(FolderRow.account_id == account_id).order_by(FolderRow.name))}
    chosen = {fid: f for fid, f in folders.items() if _chosen(f.name, patterns)}
    if patterns and not chosen:
        raise ExportUsageError(f"no archived folder of {account} matches --folder "
                               + " ".join(patterns))
    copies: Counter[tuple[int, str]] = Counter()
    rows = session.execute(
        select(MessageRow.id, MessageRow.folder_id, MessageRow.sha256, MessageRow.size,
               MessageRow.internaldate, MessageRow.flags)
        .where(MessageRow.folder_id.in_(list(folders))).order_by(MessageRow.id))
    missing = set(ids or ())
    for row_id, folder_id, sha, size, internaldate, flags in rows:
        copy = copies[folder_id, sha]
        copies[folder_id, sha] += 1  # counted over all rows, so a window never shifts keys
        when = parse_internaldate(internaldate)
        if folder_id not in chosen or (when is not None and not window.admits(when)):
            continue
        if ids is not None:
            if row_id not in ids:
                continue
            missing.discard(row_id)
        key = sha if copy == 0 else f"{sha}.{copy}"
        chosen[folder_id].items.append(Item(key, sha, size, when, flags or ""))
    if missing:
        raise ExportUsageError(f"--ids: {', '.join(map(str, sorted(missing)))} not among "
                               f"{account}'s archived messages (in the folders and dates asked)")
    return list(chosen.values())


def _chosen(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)
