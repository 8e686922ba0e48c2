"""The `blobs` rows of the manifest, inserted idempotently by every writer.

Two mailboxes pulled at once (`batch run --parallel`) may hold byte-identical messages: both
writers then insert the same blob row, and whichever commits second used to fail on the
primary key (`UNIQUE constraint failed: blobs.sha256`), after checking that the row was not
there. The row is the same content whoever writes it, so a duplicate is simply skipped by the
database itself (ON CONFLICT DO NOTHING on SQLite and PostgreSQL), which no check made before
the insert can do: the other writer may commit in between.

On PostgreSQL a row another transaction has inserted but not yet committed makes the insert
wait for it; two writers whose batches share blobs would deadlock if each inserted them in its
own order. Rows are inserted sorted by SHA-256, one statement per transaction, so all writers
take those locks in one order; should the server still report a deadlock (or a serialization
failure), the insert alone is retried inside its savepoint, a few times.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import import_module
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from migrator.archive.db import RECORDED_BLOBS
from migrator.archive.manifest import BlobRow, utcnow

BLOBS = cast(Table, BlobRow.__table__)
CHUNK = 500  # parameters per IN (...) query, well under SQLite's limit
RETRIES = 5  # inserts of one batch's blob rows after a deadlock, before giving up
log = logging.getLogger(__name__)


def insert_blobs(session: Session, sizes: Mapping[str, int]) -> int:
    """Rows for blobs (SHA-256 -> size) made durable; returns how many were new."""
    if not sizes:
        return 0
    session.info.setdefault(RECORDED_BLOBS, set()).update(sizes)  # for the search index
    now = utcnow()
    rows = [{"sha256": sha, "size": sizes[sha], "stored_at": now} for sha in sorted(sizes)]
    dialect = session.get_bind().dialect.name
    statement = insert_ignoring_duplicates(dialect)
    if statement is None:
        return _insert_missing(session, rows)
    if dialect != "postgresql":
        return len(session.execute(statement, rows).all())  # RETURNING: only rows inserted
    for attempt in range(1, RETRIES + 1):
        try:
            with session.begin_nested():
                return len(session.execute(statement, rows).all())
        except OperationalError as exc:
            if attempt == RETRIES or not _lost_a_race(exc):
                raise
            log.info("blob rows: %s; inserting them again", type(exc.orig).__name__)
    raise AssertionError("unreachable")


def _lost_a_race(exc: OperationalError) -> bool:
    """A deadlock or serialization failure: PostgreSQL undid the statement, try again."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def insert_ignoring_duplicates(dialect: str) -> ReturningInsert[tuple[str]] | None:
    """INSERT INTO blobs ... ON CONFLICT (sha256) DO NOTHING RETURNING sha256, where the
    database has it (SQLite, PostgreSQL); None elsewhere."""
    if dialect not in ("sqlite", "postgresql"):
        return None
    module: Any = import_module(f"sqlalchemy.dialects.{dialect}")  # loaded when used
    return cast(ReturningInsert[tuple[str]],
                module.insert(BLOBS).on_conflict_do_nothing(index_elements=["sha256"])
                .returning(BLOBS.c.sha256))


def _insert_missing(session: Session, rows: list[dict[str, Any]]) -> int:
    """Another database: insert what is not there yet (a concurrent writer can still race)."""
    shas = [row["sha256"] for row in rows]
    existing: set[str] = set()
    for start in range(0, len(shas), CHUNK):
        existing.update(session.scalars(select(BLOBS.c.sha256).where(
            BLOBS.c.sha256.in_(shas[start:start + CHUNK]))))
    missing = [row for row in rows if row["sha256"] not in existing]
    if missing:
        session.execute(insert(BLOBS), missing)
    return len(missing)
