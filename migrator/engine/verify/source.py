"""`verify ACCOUNT --source`: compare the archive with the source it was pulled from.

`verify ACCOUNT` compares the target with the archive; it cannot see a message the pull
never archived. This lists every message the source holds (read-only: EXAMINE and a UID
listing per IMAP folder, sent for up to `GROUP` folders at once; UIDL for POP3) and compares
it with the manifest by the rules in `source_compare.py`. Nothing is written at the source.
An IMAP message found missing is recorded in the archive as a failed pull of its UID: a
later pull skips only folders whose STATUS is unchanged and that have no open failures, so
the next one lists the folder again and fetches it (or, marked gone by mistake, makes it
live again). A POP3 pull lists the whole maildrop every time and fetches what is missing
without being told.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from migrator.archive.db import Manifest
from migrator.archive.manifest import AccountRow, FailureRow, FolderRow, MessageRow
from migrator.config import Account
from migrator.engine.events import Emit, TaskFinished, TaskStarted
from migrator.engine.imap.folder_state import included
from migrator.engine.imap.records import failed_uids_by_folder, record_failures
from migrator.engine.verify.source_compare import (
    Archived,
    SourceFolderCheck,
    SyncedAs,
    compare_imap_folder,
    compare_maildrop,
)
from migrator.sources.imap import CommandFailed, Folder, ImapSource, ListedMessage
from migrator.targets.office365 import is_office365
from migrator.wire import imapconn

TASK = "verify-source"
POP3_FOLDER = "INBOX"  # where a POP3 pull records every message
GROUP = 50  # IMAP folders whose EXAMINE and listing are sent before any answer is read
MISSING_REASON = "not in the archive though the folder was synced (found by verify --source)"


@dataclass
class SourceReport:
    account: str
    source: str  # host:port
    sizes_compared: bool = True
    folders: list[SourceFolderCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(folder.ok for folder in self.folders)

    @property
    def incomplete(self) -> bool:
        """Known gaps only: messages the pull recorded as failed, folders not readable."""
        return any(folder.failed or folder.unreadable for folder in self.folders)

    def totals(self) -> dict[str, int]:
        folders = self.folders
        return {"folders": len(folders),
                "at_source": sum(f.at_source for f in folders),
                "archived": sum(f.archived for f in folders),
                "missing": sum(len(f.missing) for f in folders),
                "failed": sum(len(f.failed) for f in folders),
                "size_differs": sum(len(f.size_differs) for f in folders),
                "new": sum(f.new for f in folders),
                "gone_from_source": sum(f.gone_from_source for f in folders),
                "unreadable_folders": sum(1 for f in folders if f.unreadable)}

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "source": self.source, "ok": self.ok,
                "sizes_compared": self.sizes_compared, "totals": self.totals(),
                "folders": [folder.as_dict() for folder in self.folders]}


def verify_source(account: Account, manifest: Manifest | None, emit: Emit) -> SourceReport:
    """List the account's source and compare it with the archive (`manifest` None: nothing
    archived yet, every message is new)."""
    endpoint = account.source
    report = SourceReport(account.name, f"{endpoint.host}:{endpoint.port}")
    emit(TaskStarted(TASK, account.name))
    summary: dict[str, object] = {"outcome": "failed"}
    try:
        archive = ArchivedAccount(manifest, account.name)
        if endpoint.protocol == "pop3":
            report.sizes_compared = False
            report.folders.append(_maildrop(account, archive, emit))
        else:
            report.sizes_compared = not is_office365(endpoint)
            report.folders.extend(_imap_folders(account, archive, report.sizes_compared))
            archive.hand_to_next_pull(report.folders)
        summary = {"outcome": "ok" if report.ok else "differences", **report.totals()}
    finally:
        emit(TaskFinished(TASK, account.name, summary))
    return report


class ArchivedAccount:
    """What the manifest holds of one account, read a folder at a time."""

    def __init__(self, manifest: Manifest | None, name: str) -> None:
        self.manifest = manifest
        self.account_id: int | None = None
        self.folders: dict[str, tuple[int, SyncedAs]] = {}
        self.failed_uids: dict[str, set[int]] = {}
        if manifest is None:
            return
        with manifest.session() as session:
            self.account_id = session.scalars(
                select(AccountRow.id).where(AccountRow.name == name)).first()
            if self.account_id is None:
                return
            for row in session.scalars(
                    select(FolderRow).where(FolderRow.account_id == self.account_id)):
                self.folders[row.name] = (row.id, SyncedAs(row.uidvalidity, row.uidnext))
            self.failed_uids = failed_uids_by_folder(session, self.account_id)

    def imap_rows(self, folder_id: int, uidvalidity: int | None) -> dict[int, Archived]:
        assert self.manifest is not None
        with self.manifest.session() as session:
            return {uid: Archived(size, gone is not None)
                    for uid, size, gone in session.execute(
                        select(MessageRow.uid, MessageRow.size, MessageRow.gone_at).where(
                            MessageRow.folder_id == folder_id,
                            MessageRow.uidvalidity == uidvalidity))
                    if uid is not None}

    def hand_to_next_pull(self, checks: list[SourceFolderCheck]) -> None:
        """Record each missing IMAP message as an open pull failure (see module doc)."""
        missing = [check for check in checks if check.missing_uids]
        if not missing or self.manifest is None or self.account_id is None:
            return
        with self.manifest.session() as session:
            for check in missing:
                record_failures(session, None, self.account_id, check.folder,
                                dict.fromkeys(check.missing_uids, MISSING_REASON))

    def pop3_rows(self) -> tuple[dict[str, list[Archived]], set[str]]:
        """Copies by UIDL, and the UIDLs whose pull failed (still open)."""
        rows: dict[str, list[Archived]] = defaultdict(list)
        found = self.folders.get(POP3_FOLDER)
        if self.manifest is None or found is None:
            return rows, set()
        with self.manifest.session() as session:
            for uidl, size, gone in session.execute(
                    select(MessageRow.uidl, MessageRow.size, MessageRow.gone_at)
                    .where(MessageRow.folder_id == found[0])):
                rows[str(uidl)].append(Archived(size, gone is not None))
            failed = {str(ref) for ref in session.scalars(select(FailureRow.ref).where(
                FailureRow.account_id == self.account_id, FailureRow.stage == "pull",
                FailureRow.folder == POP3_FOLDER, FailureRow.resolved_at.is_(None),
                FailureRow.ref.is_not(None)))}
        return rows, failed


def _imap_folders(account: Account, archive: ArchivedAccount,
                  check_sizes: bool) -> list[SourceFolderCheck]:
    """Every folder the pull would look at (the config's include/exclude), listed whole:
    no STATUS shortcut, which is what a pull that lost messages would have trusted."""
    endpoint = account.source
    source = ImapSource(imapconn.connect(endpoint, account.name,
                                         imapconn.tokens_for(endpoint, account.name)))
    checks = []
    try:
        chosen = [folder for folder in source.folders()
                  if folder.selectable and included(folder.name, endpoint)]
        for folder, listed in _listings(source, chosen):
            if isinstance(listed, CommandFailed):
                reason = f"{listed.status} {listed.text}".strip()
                checks.append(SourceFolderCheck(folder.name, unreadable=True,
                                                note=f"cannot read the folder: {reason}"))
                continue
            uidvalidity, listing = listed
            known = archive.folders.get(folder.name)
            rows = archive.imap_rows(known[0], uidvalidity) if known is not None else {}
            checks.append(compare_imap_folder(
                folder.name, uidvalidity, {uid: m.size for uid, m in listing.items()},
                known[1] if known is not None else None, rows,
                archive.failed_uids.get(folder.name, set()), check_sizes))
    finally:
        source.close()
    return checks


Listed = tuple[int | None, dict[int, ListedMessage]]  # UIDVALIDITY, every message


def _listings(source: ImapSource, folders: list[Folder]
              ) -> Iterator[tuple[Folder, Listed | CommandFailed]]:
    """Each folder's UIDVALIDITY and listing, or the server's refusal. EXAMINE and the
    listing of `GROUP` folders go out before the first answer is read: one round trip per
    group, not per folder (a server answers them in order; a refused EXAMINE leaves no
    folder selected, so its listing is refused too, and the next EXAMINE selects again)."""
    for start in range(0, len(folders), GROUP):
        sent = [(folder, source.send_examine(folder), source.send_listing(b"1:*"))
                for folder in folders[start:start + GROUP]]
        for folder, examine, listing in sent:
            try:
                status = source.read_examine(folder, examine)
            except CommandFailed as exc:
                source.drain([listing])
                yield folder, exc
                continue
            try:
                found = source.read_listing(listing)
            except CommandFailed as exc:  # an empty folder's may be refused: nothing lost
                if status.messages:
                    yield folder, exc
                    continue
                found = {}
            yield folder, (status.uidvalidity, found)


def _maildrop(account: Account, archive: ArchivedAccount, emit: Emit) -> SourceFolderCheck:
    from migrator.engine.pop3.pull import identify, open_session

    session = open_session(account)
    try:
        maildrop = identify(session, account, emit)
    finally:
        session.close()  # no QUIT: nothing to commit, and nothing is deleted
    rows, failed = archive.pop3_rows()
    return compare_maildrop(POP3_FOLDER, [str(item.uidl) for item in maildrop.listing], rows,
                            failed)
