"""Integrity check of the archive: every blob re-hashed against its name and its rows.

Finds blobs that are missing or corrupted (naming every message that points at them) and
manifest rows that point at nothing. Blob files without a row are harmless (an interrupted
write that is reused later) and only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from migrator.archive.blobs import BlobStore
from migrator.archive.manifest import AccountRow, BlobRow, FolderRow, MessageRow
from migrator.engine.events import Emit, Notice, TaskAdvanced, TaskFinished, TaskStarted, discard


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | corrupted | orphan-row
    sha256: str
    messages: tuple[str, ...]

    def describe(self) -> str:
        where = "; ".join(self.messages) or "no message refers to it"
        return f"{self.kind} blob {self.sha256}: {where}"


@dataclass
class ArchiveReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    unreferenced_files: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        kinds = [p.kind for p in self.problems]
        return {"blobs": self.blobs_checked, "bytes": self.bytes_checked,
                "missing": kinds.count("missing"), "corrupted": kinds.count("corrupted"),
                "orphan_rows": kinds.count("orphan-row"),
                "unreferenced_files": self.unreferenced_files}


def describe_messages(session: Session, sha256: str) -> tuple[str, ...]:
    rows = session.execute(
        select(AccountRow.name, FolderRow.name, MessageRow.uid, MessageRow.uidl,
               MessageRow.message_id)
        .join(FolderRow, MessageRow.folder_id == FolderRow.id)
        .join(AccountRow, FolderRow.account_id == AccountRow.id)
        .where(MessageRow.sha256 == sha256)
    )
    described = []
    for account, folder, uid, uidl, message_id in rows:
        ref = f"UID {uid}" if uid is not None else f"UIDL {uidl}"
        described.append(f"{account}/{folder} {ref} Message-ID {message_id or '(none)'}")
    return tuple(described)


def check_archive(session: Session, store: BlobStore, emit: Emit = discard) -> ArchiveReport:
    report = ArchiveReport()
    blobs = session.execute(select(BlobRow.sha256, BlobRow.size)).all()
    emit(TaskStarted("verify-archive", "", total=len(blobs),
                     total_bytes=sum(size for _, size in blobs)))
    known = set()
    for sha256, size in blobs:
        known.add(sha256)
        state = store.check(sha256)
        report.blobs_checked += 1
        report.bytes_checked += size
        if state != "ok":
            problem = Problem(state, sha256, describe_messages(session, sha256))
            report.problems.append(problem)
            emit(Notice("error", problem.describe()))
        emit(TaskAdvanced("verify-archive", "", 1, size))
    for sha256 in _rows_without_blob(session):
        problem = Problem("orphan-row", sha256, describe_messages(session, sha256))
        report.problems.append(problem)
        emit(Notice("error", problem.describe()))
    report.unreferenced_files = sum(1 for sha in store.iter_shas() if sha not in known)
    emit(TaskFinished("verify-archive", "", report.counts()))
    return report


def _rows_without_blob(session: Session) -> list[str]:
    """Message rows whose blob row is absent (possible only if foreign keys were off)."""
    query = (select(MessageRow.sha256).outerjoin(BlobRow, BlobRow.sha256 == MessageRow.sha256)
             .where(BlobRow.sha256.is_(None)).distinct())
    return list(session.scalars(query))
