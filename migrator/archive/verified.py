"""Each target folder as verify last found it complete (table `verified_folders`).

What is kept is a folder's state at the target (UIDVALIDITY, UIDNEXT, MESSAGES, and
HIGHESTMODSEQ where the target offers CONDSTORE), a digest of what the archive expected
there, and the figures that verify reported for it. Only a folder found complete is kept; a
folder found wanting, or one this run could not vouch for, is forgotten, so it is compared
again next time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from migrator.archive.manifest import VerifiedFolderRow, utcnow


@dataclass(frozen=True)
class FolderState:
    """A target folder's STATUS: what changes whenever a message comes, goes or (with
    CONDSTORE) has its flags changed."""

    uidvalidity: int | None
    uidnext: int | None
    messages: int | None
    highestmodseq: int | None = None

    @property
    def complete(self) -> bool:
        """UIDVALIDITY, UIDNEXT and MESSAGES all known: only then can it vouch for a folder."""
        return None not in (self.uidvalidity, self.uidnext, self.messages)


@dataclass(frozen=True)
class Verified:
    state: FolderState
    archive_digest: str
    report: dict[str, Any]


def load(session: Session, target: str) -> dict[str, Verified]:
    """Target folder -> its last verified state, for one target."""
    rows = session.scalars(select(VerifiedFolderRow).where(VerifiedFolderRow.target == target))
    return {row.folder: Verified(FolderState(row.uidvalidity, row.uidnext, row.messages,
                                             row.highestmodseq),
                                 row.archive_digest, json.loads(row.report))
            for row in rows}


def save(session: Session, target: str, folder: str, verified: Verified) -> None:
    row = session.scalars(select(VerifiedFolderRow).where(
        VerifiedFolderRow.target == target, VerifiedFolderRow.folder == folder)).first()
    if row is None:
        row = VerifiedFolderRow(target=target, folder=folder)
        session.add(row)
    state = verified.state
    row.uidvalidity, row.uidnext = state.uidvalidity, state.uidnext
    row.messages, row.highestmodseq = state.messages, state.highestmodseq
    row.archive_digest = verified.archive_digest
    row.report = json.dumps(verified.report, sort_keys=True)
    row.verified_at = utcnow()


def forget(session: Session, target: str, folders: Iterable[str] | None = None) -> None:
    """Drop the records of `folders` (default: every folder of the target)."""
    query = delete(VerifiedFolderRow).where(VerifiedFolderRow.target == target)
    if folders is not None:
        names = list(folders)
        if not names:
            return
        query = query.where(VerifiedFolderRow.folder.in_(names))
    session.execute(query)
