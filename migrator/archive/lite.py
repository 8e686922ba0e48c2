"""The manifest through the standard library's sqlite3 alone: what the no-op probe reads,
and the run row it leaves.

Only an SQLite manifest at SCHEMA_HEAD is opened (anything else is None: the caller takes
the full path, which upgrades or refuses it). The connection gets the pragmas `db.py` gives
SQLAlchemy's, and rows are written in the formats SQLAlchemy writes them (a unit test reads
them back through the ORM models).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from migrator.archive.schema_head import SCHEMA_HEAD

SQLITE_PREFIX = "sqlite:///"
RUNNING = "running"  # as archive/runs.py (which needs SQLAlchemy) spells it


def utcnow() -> datetime:
    """As `manifest.utcnow`: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def stored_time(moment: datetime) -> str:
    """A time as SQLAlchemy's SQLite DateTime stores it (microseconds always written)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class FolderRecord:
    """A `folders` row as a pull left it."""

    id: int
    name: str
    raw_name: str
    delimiter: str | None
    special_use: str | None
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    message_count: int | None
    gone: bool


def sqlite_path(url: str) -> Path | None:
    """The file of an `sqlite:///FILE` URL without options; None for anything else."""
    if not url.startswith(SQLITE_PREFIX) or "?" in url:
        return None
    path = url.removeprefix(SQLITE_PREFIX)
    return Path(path) if path and path != ":memory:" else None


class LiteManifest:
    """An open SQLite manifest at SCHEMA_HEAD."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    @classmethod
    def open(cls, url: str) -> LiteManifest | None:
        """The manifest at `url` if it is an existing SQLite file at SCHEMA_HEAD, else None."""
        path = sqlite_path(url)
        if path is None or not path.is_file():
            return None
        connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        try:
            for pragma in ("synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
                connection.execute(f"PRAGMA {pragma}")
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error:
            connection.close()
            return None
        if str(mode).lower() != "wal" or revision != [(SCHEMA_HEAD,)]:
            connection.close()
            return None
        return cls(connection)

    def close(self) -> None:
        self.connection.close()

    def account_id(self, name: str) -> int | None:
        row = self.connection.execute("SELECT id FROM accounts WHERE name = ?",
                                      (name,)).fetchone()
        return None if row is None else int(row[0])

    def has_running_runs(self, account_id: int) -> bool:
        """A run still open (alive elsewhere, or dead and not yet marked `died`)."""
        return self.connection.execute(
            "SELECT 1 FROM runs WHERE account_id = ? AND outcome = ? LIMIT 1",
            (account_id, RUNNING)).fetchone() is not None

    def last_run_ok(self, account_id: int) -> bool:
        """Did the account's latest run (of any command) end `ok`?"""
        row = self.connection.execute(
            "SELECT outcome FROM runs WHERE account_id = ? ORDER BY id DESC LIMIT 1",
            (account_id,)).fetchone()
        return row is not None and row[0] == "ok"

    def has_open_failures(self, account_id: int) -> bool:
        """Any unresolved failure of the account, whatever its stage."""
        return self.connection.execute(
            "SELECT 1 FROM failures WHERE account_id = ? AND resolved_at IS NULL LIMIT 1",
            (account_id,)).fetchone() is not None

    def folders(self, account_id: int) -> dict[str, FolderRecord]:
        rows = self.connection.execute(
            "SELECT id, name, raw_name, delimiter, special_use, uidvalidity, uidnext, "
            "highestmodseq, message_count, gone_at FROM folders WHERE account_id = ?",
            (account_id,))
        return {name: FolderRecord(id, name, raw, delimiter, special_use, uidvalidity, uidnext,
                                   modseq, count, gone=gone is not None)
                for (id, name, raw, delimiter, special_use, uidvalidity, uidnext, modseq, count,
                     gone) in rows}

    def record_run(self, account_id: int, command: str, started: datetime,
                   counts: Mapping[str, int], outcome: str = "ok") -> int:
        """A finished run's row, as `runs.record_run` leaves one; committed at once."""
        cursor = self.connection.execute(
            "INSERT INTO runs (account_id, command, started_at, finished_at, outcome, counts, "
            "error) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (account_id, command, stored_time(started), stored_time(utcnow()), outcome,
             json.dumps(dict(counts))))
        assert cursor.lastrowid is not None
        return cursor.lastrowid
