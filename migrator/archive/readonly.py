"""Open the manifest for a dry run: read what is there, create and change nothing.

A dry run must leave the archive exactly as it found it: no archive directory, no
`manifest.sqlite`, no `-wal`/`-shm` side files, no schema upgrade. So an SQLite manifest is
opened `immutable` (SQLite then takes no lock and creates no side file; a `mode=ro`
connection would leave `-wal` and `-shm` behind), and where the manifest is missing or needs
an Alembic upgrade the preview works on a copy in memory, upgraded there.

The price of `immutable`: a run that starts writing while the preview reads is not seen, so
a preview made during another run may be out of date by what that run did meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool, StaticPool

from migrator.archive.db import (
    SCHEMA_HEAD,
    Manifest,
    alembic_config,
    current_revision,
)
from migrator.archive.server_readonly import open_server_readonly, refuse_unknown
from migrator.errors import ManifestError

log = logging.getLogger(__name__)


def open_manifest_readonly(url: str) -> Manifest:
    """The manifest at `url` as it is now, for reading only; nothing on disk changes.

    A database server (any URL but SQLite's): see server_readonly.py.
    """
    if not url.startswith("sqlite:///"):
        return open_server_readonly(url)
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        log.info("dry run: no manifest at %s yet; a real run would create it", path)
        return Manifest(_upgraded_in_memory(None))
    engine = _file_engine(path)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ManifestError(f"cannot read manifest {path}: {getattr(exc, 'orig', exc)}") from None
    if revision == SCHEMA_HEAD:
        return Manifest(engine)
    engine.dispose()
    refuse_unknown(str(path), revision)
    log.warning("dry run: manifest %s has schema %s; a real run would upgrade it to %s first. "
                "The preview uses an upgraded copy in memory; the file is not changed",
                path, revision or "(none)", SCHEMA_HEAD)
    try:
        return Manifest(_upgraded_in_memory(path))
    except (sqlite3.Error, SQLAlchemyError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {getattr(exc, 'orig', exc)}") from None


def _file_uri(path: Path) -> str:
    # `immutable`: no locks, no side files. What a run that is writing right now has in its
    # -wal file would be invisible, so a manifest with a -wal file is opened `mode=ro`
    # instead: its side files exist already and their content is the other run's.
    wal = path.with_name(path.name + "-wal")
    flag = "mode=ro" if wal.exists() else "immutable=1"
    return f"file:{quote(str(path.resolve()))}?{flag}"


def _file_engine(path: Path) -> Engine:
    uri = _file_uri(path)
    engine = create_engine(
        "sqlite://", poolclass=QueuePool,
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
    event.listen(engine, "connect", _pragmas)
    return engine


def _pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.execute("PRAGMA foreign_keys=ON")
    dbapi_connection.execute("PRAGMA busy_timeout=30000")



def _upgraded_in_memory(path: Path | None) -> Engine:
    """An in-memory database: a copy of the manifest at `path` (or empty), at SCHEMA_HEAD."""
    from alembic import command

    memory = sqlite3.connect(":memory:", check_same_thread=False)
    if path is not None:
        source = sqlite3.connect(_file_uri(path), uri=True)
        try:
            source.backup(memory)
        finally:
            source.close()
    engine = create_engine("sqlite://", poolclass=StaticPool, creator=lambda: memory)
    event.listen(engine, "connect", _pragmas)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    return engine
