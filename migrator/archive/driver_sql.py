"""Plain SQL through the database driver, for the manifest's writes made once per message.

A pull records a row per message and a push two (its intent, its outcome), many at a time.
Through SQLAlchemy's statements, its per-row parameter handling and the statements built
again for each batch cost about twice what the database spent running them. The SQL of these
writes is plain and the same on SQLite and PostgreSQL: only the placeholder and how a
datetime is passed differ, and both are taken from the dialect SQLAlchemy uses for the
manifest, so the rows read back exactly as if SQLAlchemy had written them. The statements
still pass through the engine's events (PostgreSQL's NUL replacement, `db.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime

IN_CHUNK = 500  # parameters per IN (...), well under SQLite's limit


class DriverSQL:
    """One connection's placeholder and datetime form; SQL written with `mark`."""

    def __init__(self, connection: Connection, datetime_column: Column[Any] | None = None) -> None:
        dialect = connection.dialect
        self.connection = connection
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        column_type = datetime_column.type if datetime_column is not None else DateTime()
        processor = column_type.bind_processor(dialect)
        self._when: Callable[[datetime], Any] = processor or (lambda value: value)

    def when(self, value: datetime) -> Any:
        """A datetime as this dialect's DateTime column takes it."""
        return self._when(value)

    def marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One statement, many parameter sets (nothing to do for none)."""
        if rows:
            self.connection.exec_driver_sql(sql, list(rows))

    def column_in(self, sql: str, leading: tuple[Any, ...], values: Sequence[Any]) -> list[Any]:
        """The first column of `sql` (ending in `IN ({})`) for `values`, IN_CHUNK at a time."""
        found: list[Any] = []
        for start in range(0, len(values), IN_CHUNK):
            part = tuple(values[start:start + IN_CHUNK])
            rows = self.connection.exec_driver_sql(sql.format(self.marks(len(part))),
                                                   (*leading, *part))
            found.extend(row[0] for row in rows)
        return found
