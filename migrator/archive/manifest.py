"""Manifest tables: the single record of what exists where.

Schema changes go only through Alembic revisions in `migrations/`; these models must match
the newest revision (a test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def flags_text(flags: Sequence[str]) -> str:
    """Flags as `messages.flags` stores them: space-separated, sorted, each once (so that
    comparing two texts compares the flag sets)."""
    return " ".join(sorted(set(flags)))


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    """An account as named in the config; the key of everything below it."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    folders: Mapped[list[FolderRow]] = relationship(back_populates="account")


class FolderRow(Base):
    """A source folder and the sync state that makes an unchanged folder cost one round trip."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)  # decoded (Unicode) name as the source shows it
    raw_name: Mapped[str] = mapped_column(Text)  # name on the wire (modified UTF-7 for IMAP)
    delimiter: Mapped[str | None] = mapped_column(String(4))
    special_use: Mapped[str | None] = mapped_column(String(40))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger)
    message_count: Mapped[int | None] = mapped_column(Integer)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime)
    gone_at: Mapped[datetime | None] = mapped_column(DateTime)
    account: Mapped[AccountRow] = relationship(back_populates="folders")


class BlobRow(Base):
    """A distinct message content stored in the archive (file named by its SHA-256)."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MessageRow(Base):
    """One message in one source folder; several rows may share a blob."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uidvalidity", "uid"),
        Index("ix_messages_folder_uidl", "folder_id", "uidl"),
        Index("ix_messages_sha256", "sha256"),
        Index("ix_messages_message_id", "message_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # IMAP
    uid: Mapped[int | None] = mapped_column(BigInteger)  # IMAP
    uidl: Mapped[str | None] = mapped_column(String(200))  # POP3
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    internaldate: Mapped[str | None] = mapped_column(String(40))  # ISO 8601 with UTC offset
    flags: Mapped[str] = mapped_column(Text, default="")  # space-separated, sorted
    message_id: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    gone_at: Mapped[datetime | None] = mapped_column(DateTime)  # vanished from the source
    folder: Mapped[FolderRow] = relationship()


class SearchDocRow(Base):
    """A stored message content in the search index (the words are in `search_fts`, which
    only the revision and `archive/search_index.py` know: FTS5 on SQLite, tsvector else)."""

    __tablename__ = "search_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), unique=True)
    date: Mapped[str | None] = mapped_column(String(40))  # the Date header, UTC ISO 8601
    sender: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)


class PushRow(Base):
    """A message's journey to a target: intent before APPEND, target UID after."""

    __tablename__ = "pushes"
    __table_args__ = (
        UniqueConstraint("archive_message_id", "target"),
        Index("ix_pushes_target_state", "target", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # The archive's MessageRow (messages.id); `MessageRow.message_id` is the Message-ID header.
    archive_message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(300))  # target identity (e.g. user@host)
    target_folder: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))  # intent|done|refused|failed
    target_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    target_uid: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    message: Mapped[MessageRow] = relationship()


class SourceDeletionRow(Base):
    """A deletion from a source (POP3 policy): when, what, and why it was safe."""

    __tablename__ = "source_deletions"
    id: Mapped[int] = mapped_column(primary_key=True)
    archive_message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20))  # pending|committed
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    committed_at: Mapped[datetime | None] = mapped_column(DateTime)


class FailureRow(Base):
    """A message that could not be fetched or pushed, with the reason, for reports."""

    __tablename__ = "failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(20))  # pull|push|delete
    folder: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(Text)  # UID, UIDL or Message-ID
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)


class RunRow(Base):
    """Audit of every job: what ran, when, with which counts and outcome."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    command: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    error: Mapped[str | None] = mapped_column(Text)


class VerifiedFolderRow(Base):
    """A target folder as verify last found it complete: its state at the target and a digest
    of what the archive expected there. A re-run compares again only when either changed."""

    __tablename__ = "verified_folders"
    __table_args__ = (UniqueConstraint("target", "folder"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(300))  # target identity, as in pushes
    folder: Mapped[str] = mapped_column(Text)  # target folder name
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    messages: Mapped[int | None] = mapped_column(Integer)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger)  # where CONDSTORE is offered
    archive_digest: Mapped[str] = mapped_column(String(64))
    report: Mapped[str] = mapped_column(Text)  # JSON: the folder's figures at that verify
    verified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkItemRow(Base):
    """One mailbox of a batch pass, queued for the workers (migrator.archive.work_queue)."""

    __tablename__ = "work_items"
    __table_args__ = (UniqueConstraint("batch", "pass_number", "account"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    batch: Mapped[str] = mapped_column(String(200))
    pass_number: Mapped[int] = mapped_column(Integer)
    account: Mapped[str] = mapped_column(String(200), index=True)
    line: Mapped[int] = mapped_column(Integer)
    source_file: Mapped[str] = mapped_column(Text)  # the CSV's name, for messages
    record: Mapped[str | None] = mapped_column(Text)  # the CSV row (JSON): references only
    state: Mapped[str] = mapped_column(String(20), index=True)  # queued|running|done|failed
    worker: Mapped[str | None] = mapped_column(String(200))  # host:pid
    lease_token: Mapped[int] = mapped_column(Integer, default=0)  # bumped at every claim
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(Text)  # JSON: the mailbox's outcome
    error: Mapped[str | None] = mapped_column(Text)


class WorkClaimRow(Base):
    """A worker's claim on a work item, from its lease's start to how it ended."""

    __tablename__ = "work_claims"
    id: Mapped[int] = mapped_column(primary_key=True)
    work_item_id: Mapped[int] = mapped_column(
        ForeignKey("work_items.id", ondelete="CASCADE"), index=True)
    lease_token: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended: Mapped[str | None] = mapped_column(String(20))  # done|failed|expired|released
