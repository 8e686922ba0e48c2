"""A push's intents and outcomes written through the database driver: its hottest writes.

Every message sent costs an intent row before its APPEND and an outcome after it, in one
transaction per window of messages. Through SQLAlchemy's statements, its per-row parameter
handling, the statements built again for each window and the ORM's layer for the look-up
cost about twice what the database spent running them (0.15 against 0.07 CPU s per 3,000
messages). The SQL is plain and the same on SQLite and PostgreSQL: only the placeholder and
how a datetime is passed differ, and both are taken from the dialect SQLAlchemy uses for the
manifest, so the rows read back exactly as if SQLAlchemy had written them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table

from migrator.archive.manifest import PushRow
from migrator.engine.push.candidate import INTENT

IN_CHUNK = 500  # parameters per IN (...), well under SQLite's limit (a window holds 48)
# (message, state, note, uidvalidity, uid, target folder or None to keep the row's)
OutcomeValues = tuple[int, str, str | None, int | None, int | None, str | None]


class DriverRows:
    """The push rows' SQL for one connection's dialect."""

    def __init__(self, connection: Connection) -> None:
        dialect = connection.dialect
        self.connection = connection
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        processor = cast(Table, PushRow.__table__).c.updated_at.type.bind_processor(dialect)
        self._when: Callable[[datetime], Any] = processor or (lambda value: value)

    def existing(self, target: str, ids: Sequence[int]) -> set[int]:
        """Which of these messages already have a push row for `target`."""
        found: set[int] = set()
        for start in range(0, len(ids), IN_CHUNK):
            part = ids[start:start + IN_CHUNK]
            marks = ", ".join([self.mark] * len(part))
            rows = self.connection.exec_driver_sql(
                f"SELECT archive_message_id FROM pushes WHERE target = {self.mark} "
                f"AND archive_message_id IN ({marks})", (target, *part))
            found.update(int(row[0]) for row in rows)
        return found

    def insert_intents(self, target: str, items: Iterable[tuple[int, str]],
                       now: datetime) -> None:
        m, when = self.mark, self._when(now)
        self._many(f"INSERT INTO pushes (archive_message_id, target, target_folder, state, "
                   f"attempts, updated_at) VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
                   [(message, target, folder, INTENT, 1, when) for message, folder in items])

    def intents_again(self, target: str, items: Iterable[tuple[int, str]],
                      now: datetime) -> None:
        """Rows tried before become intents again: one attempt more, the old outcome gone."""
        m, when = self.mark, self._when(now)
        self._many(f"UPDATE pushes SET state = {m}, target_folder = {m}, "
                   f"attempts = attempts + 1, target_uid = NULL, target_uidvalidity = NULL, "
                   f"last_error = NULL, updated_at = {m} "
                   f"WHERE archive_message_id = {m} AND target = {m}",
                   [(INTENT, folder, when, message, target) for message, folder in items])

    def outcomes(self, target: str, outcomes: Iterable[OutcomeValues], now: datetime) -> None:
        m, when = self.mark, self._when(now)
        self._many(f"UPDATE pushes SET state = {m}, last_error = {m}, "
                   f"target_uidvalidity = {m}, target_uid = {m}, "
                   f"target_folder = COALESCE({m}, target_folder), updated_at = {m} "
                   f"WHERE archive_message_id = {m} AND target = {m}",
                   [(state, note, validity, uid, folder, when, message, target)
                    for message, state, note, validity, uid, folder in outcomes])

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.connection.exec_driver_sql(sql, rows)
