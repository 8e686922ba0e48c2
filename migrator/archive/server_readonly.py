"""Open a manifest on a database server (PostgreSQL) for a dry run: read, change nothing.

At the current schema every transaction is READ ONLY, so the server itself refuses any write
a preview might attempt. A database that needs an upgrade (or has no schema yet) is previewed
as a real run would see it: the Alembic upgrade runs inside one transaction on one connection,
the preview's sessions run in savepoints of it, and closing rolls it all back. PostgreSQL's
DDL is transactional, so nothing of the upgrade remains; while the preview runs, its
uncommitted tables hold their locks, and a real run that starts meanwhile waits for it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError

from migrator.archive.db import (
    SCHEMA_HEAD,
    Manifest,
    alembic_config,
    current_revision,
    make_engine,
    open_error,
    safe_url,
)
from migrator.errors import ManifestTooNewError

log = logging.getLogger(__name__)


def open_server_readonly(url: str) -> Manifest:
    """The manifest at `url` (a database server) as it is now, for reading only."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
        if revision == SCHEMA_HEAD:
            event.listen(engine, "connect", _read_only)
            engine.dispose()  # the connection above was opened before the listener
            return Manifest(engine)
        refuse_unknown(safe_url(url), revision)
        log.warning("dry run: manifest %s has schema %s; a real run would upgrade it to %s "
                    "first. The preview upgrades it in a transaction that is rolled back; the "
                    "database is not changed", safe_url(url), revision or "(none)", SCHEMA_HEAD)
        return Manifest(engine, connection=_upgraded_in_transaction(engine))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise open_error(url, exc) from None
    except BaseException:
        engine.dispose()
        raise


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    """Every transaction on this connection READ ONLY (a SET is transactional: committed)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


def _upgraded_in_transaction(engine: Engine) -> Any:
    from alembic import command

    connection = engine.connect()
    try:
        connection.begin()
        command.upgrade(alembic_config(connection), "head")
    except BaseException:
        connection.close()
        raise
    return connection


def refuse_unknown(where: str, revision: str | None) -> None:
    """A manifest from a newer migrator is refused, as a real run would refuse it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    if revision is not None and revision not in {r.revision for r in script.walk_revisions()}:
        raise ManifestTooNewError(
            f"manifest {where} has schema revision {revision}, newer than this migrator "
            f"knows (latest {script.get_current_head()}); upgrade migrator")
