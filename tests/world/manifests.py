"""Where the tests' manifests live: an SQLite file in the archive (migrator's default), or one
database per archive on the private PostgreSQL cluster.

A test module marked `manifest_databases` runs each test twice, once per kind (the autouse
fixture `manifest_database` in tests/conftest.py switches this module over). Nothing else in
a test changes: configs built by tests.world.configs name the archive's PostgreSQL database
on their own, and `connect(archive)` reads whichever manifest the archive has, with plain
DB-API (sqlite3 or psycopg, never migrator's models), `?` placeholders and rows readable by
index and by column name on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_server: Any = None  # the PostgresServer while a test runs on PostgreSQL, else None
_databases: dict[Path, str] = {}  # archive directory -> its database URL on that server
# Databases of finished tests, emptied for the next test: a new database costs a copy of the
# template (about 7 MB of disk, a fraction of a second), an emptied one a few milliseconds.
_emptied: dict[int, list[str]] = {}  # id(server) -> URLs


def use_postgresql(server: Any) -> None:
    """From now on each archive gets a database of its own on `server`."""
    global _server
    _server = server
    _databases.clear()


def use_sqlite() -> None:
    """Back to SQLite (at the end of each test): the test's databases are emptied for reuse."""
    global _server
    if _server is not None:
        for found in _databases.values():
            _empty(found)
            _emptied.setdefault(id(_server), []).append(found)
    _server = None
    _databases.clear()


def _empty(url: str) -> None:
    """Every table, sequence and row gone: as new. Sessions a test left behind are ended
    first (a killed process's, say), so that none holds a lock on what is dropped."""
    import psycopg
    from sqlalchemy import make_url

    parsed = make_url(url)
    where = {"host": parsed.host, "port": parsed.port, "user": parsed.username}
    with psycopg.connect(**where, dbname="postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (parsed.database,))
    with psycopg.connect(**where, dbname=parsed.database, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


def on_postgresql() -> bool:
    return _server is not None


def database(archive: str | Path) -> str | None:
    """The `database` a config for `archive` names: None (the SQLite file, migrator's
    default) or the archive's PostgreSQL database, created the first time it is asked for."""
    if _server is None:
        return None
    key = Path(archive).resolve()
    if key not in _databases:
        reusable = _emptied.get(id(_server))
        _databases[key] = reusable.pop() if reusable else _server.create_database()
    return _databases[key]


def url(archive: str | Path) -> str:
    """The SQLAlchemy URL of the archive's manifest, whichever kind it is."""
    return database(archive) or f"sqlite:///{Path(archive) / 'manifest.sqlite'}"


class Row(tuple):
    """A result row readable as row[0] and row["column"] (as sqlite3.Row), and equal to the
    tuple of its values (unlike sqlite3.Row)."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


class _PostgresConnection:
    """psycopg behind sqlite3's face: `?` placeholders, execute() returning a cursor."""

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy import make_url

        parsed = make_url(url)
        self.connection = psycopg.connect(host=parsed.host, port=parsed.port,
                                          user=parsed.username, dbname=parsed.database,
                                          row_factory=_row_factory)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        if parameters:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return self.connection.execute(sql, tuple(parameters) or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(sql.replace("%", "%%").replace("?", "%s"), rows)

    def commit(self) -> None:
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def _row_factory(cursor: Any) -> Any:
    names = tuple(column.name for column in cursor.description or ())
    row_type = type("Row", (Row,), {"names": names})
    return lambda values: row_type(values)


def _sqlite_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    row = Row(values)
    row.names = tuple(column[0] for column in cursor.description or ())
    return row


@contextmanager
def connect(archive: str | Path) -> Iterator[Any]:
    """The archive's manifest, opened with plain DB-API; committed on success, then closed."""
    found = database(archive)
    connection: Any
    if found is None:
        connection = sqlite3.connect(Path(archive) / "manifest.sqlite")
        connection.row_factory = _sqlite_row  # the same Row on both: equal to a tuple too
    else:
        connection = _PostgresConnection(found)
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()



def exists(archive: str | Path) -> bool:
    """Whether the manifest can be opened for reading yet (a PostgreSQL one always can;
    opening a missing SQLite file would create it)."""
    return database(archive) is not None or (Path(archive) / "manifest.sqlite").exists()


def contents(archive: str | Path) -> bytes:
    """Everything the manifest stores, as bytes: the SQLite file with its side files, or
    every row of every table of the PostgreSQL database (for leak checks and "nothing
    changed" comparisons)."""
    found = database(archive)
    if found is None:
        return b"".join(path.read_bytes() for path in
                        sorted(Path(archive).glob("manifest.sqlite*")) if path.is_file())
    parts = []
    with connect(archive) as db:
        tables = [name for (name,) in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        for table in tables:
            rows = db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
            parts.append(f"{table}: {[tuple(row) for row in rows]!r}\n")
    return "".join(parts).encode("utf-8", "backslashreplace")


def errors() -> tuple[type[Exception], ...]:
    """The DB-API errors a read of either kind of manifest can raise."""
    import psycopg

    return (sqlite3.Error, psycopg.Error)
