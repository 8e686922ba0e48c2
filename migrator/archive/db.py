"""Open the manifest database: engine, SQLite pragmas, and Alembic upgrade on open.

An older manifest is upgraded (and the upgrade announced); a manifest stamped by a newer
migrator is refused rather than guessed at. A manifest that cannot be opened is an error,
never silently recreated: losing sync state without a word is how mail gets duplicated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from migrator.archive.schema_head import SCHEMA_HEAD
from migrator.diskfull import disk_full, is_disk_full
from migrator.errors import (
    ConfigError,
    ManifestError,
    ManifestTooNewError,
    ManifestUnreachableError,
)

log = logging.getLogger(__name__)

RECORDED_BLOBS = "recorded_blobs"  # session.info key: blobs whose rows this transaction wrote

# PostgreSQL advisory lock held while a schema is created or upgraded ("migrate" in ASCII)
SCHEMA_LOCK_KEY = 0x6D696772617465

# A database server's connections (see server_options): kept open, opened at busy moments,
# seconds a thread waits for one, seconds to give up reaching the server.
POOL_SIZE = 5
POOL_OVERFLOW = 20
POOL_WAIT = 300
CONNECT_TIMEOUT = 10


def migrations_dir() -> Path:
    """The Alembic script directory: packaged copy when installed, else the source tree."""
    try:
        packaged = resources.files("migrator._migrations")
        path = Path(str(packaged))
        if (path / "env.py").exists():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Manifest:
    """A connected, up-to-date manifest: hands out sessions.

    `connection`: every session on this one connection instead of the engine's pool, each
    in a savepoint of the transaction the connection holds open, and one at a time (a dry
    run's preview of a PostgreSQL manifest upgraded inside a transaction that is rolled
    back at close; see readonly.py).
    """

    def __init__(self, engine: Engine, connection: Connection | None = None) -> None:
        self.engine = engine
        self.connection = connection
        self._one_at_a_time = threading.RLock() if connection is not None else None
        if connection is None:
            self.sessions = sessionmaker(engine, expire_on_commit=False)
        else:
            self.sessions = sessionmaker(bind=connection, expire_on_commit=False,
                                         join_transaction_mode="create_savepoint")
        self._recorded: Callable[[Iterable[str]], None] | None = None
        self._on_close: Callable[[], None] | None = None

    def on_blobs_recorded(self, callback: Callable[[Iterable[str]], None],
                          on_close: Callable[[], None]) -> None:
        """Call `callback` with the blobs each committed session recorded (the search
        index: `archive/search_index.py`), and `on_close` before the manifest closes."""
        self._recorded, self._on_close = callback, on_close

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error; a full disk (SQLite
        says so at an insert or at the commit) is a StorageError, and the rollback leaves
        the manifest as the last commit left it."""
        with self._one_at_a_time or nullcontext():
            try:
                with self.sessions() as session, session.begin():
                    yield session
            except OperationalError as exc:
                url = str(self.engine.url)
                if lost_server(url, exc):  # mid-run: the same line as at start, exit 6
                    raise open_error(url, exc) from exc
                if not is_disk_full(exc):
                    raise
                raise disk_full(f"cannot write manifest {safe_url(url)}", exc) from exc
        recorded = session.info.get(RECORDED_BLOBS)
        if recorded and self._recorded is not None:
            self._recorded(recorded)

    def close(self) -> None:
        if self._on_close is not None:
            on_close, self._on_close, self._recorded = self._on_close, None, None
            on_close()
        if self.connection is not None:
            self.connection.rollback()  # whatever the preview did is undone here
            self.connection.close()
            self.connection = None
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ManifestError(f"cannot create {path.parent}: {exc.strerror}") from None
    try:
        engine = create_engine(url, **server_options(url))
    except ModuleNotFoundError as exc:  # the URL names a driver that is not installed
        hint = " (pip install 'migrator[postgres]')" if url.startswith("postgresql") else ""
        raise ConfigError(f"archive.database {safe_url(url)} needs the Python module "
                          f"{exc.name}{hint}") from None
    except ArgumentError as exc:
        raise ConfigError(f"archive.database is not a database URL: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    return engine


def _without_nul(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                 _executemany: bool) -> tuple[str, Any]:
    """NUL characters in text made U+FFFD for PostgreSQL, which refuses them in any text
    column (SQLite stores them): a Message-ID header or a server's error text may hold one,
    and one odd message must not fail the batch it came in. Bytes are left alone."""
    return statement, _replace_nul(parameters)


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: _replace_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_replace_nul(item) for item in value)
    return value


def server_options(url: str) -> dict[str, Any]:
    """Pool and connection settings for a database server (none for SQLite's file).

    A process holds at most POOL_SIZE + POOL_OVERFLOW connections, whatever its threads
    (a batch's mailboxes, a push's workers) ask for: a thread beyond that waits for one to
    come back (every session is short) rather than open another, so a batch of any size
    cannot exhaust the server's max_connections. A connection the server dropped while idle
    is replaced before use (pre-ping), not found broken in the middle of a run.
    """
    if url.startswith("sqlite"):
        return {}
    options: dict[str, Any] = {
        "pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_WAIT,
        "pool_pre_ping": True, "pool_recycle": 1800}
    if url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT,
                                   "application_name": "migrator"}
    return options


def open_manifest(url: str, *, upgrade: bool = True) -> Manifest:
    """Connect to the manifest at `url`, applying pending schema revisions."""
    engine = make_engine(url)
    try:
        ensure_schema(engine, url, upgrade=upgrade)
    except SQLAlchemyError as exc:
        engine.dispose()
        if is_disk_full(exc):  # creating or upgrading the schema
            raise disk_full(f"cannot write manifest {safe_url(url)}", exc) from None
        raise open_error(url, exc) from None
    except BaseException:
        engine.dispose()
        raise
    return Manifest(engine)


def manifest_exists(url: str) -> bool:
    """Whether a manifest is there to read, creating nothing: the SQLite file exists, or the
    server's database holds a schema (an empty database is no archive yet). A server that
    cannot be reached is the usual one-line error (exit 6)."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).exists()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return inspect(connection).has_table("alembic_version")
    except SQLAlchemyError as exc:
        raise open_error(url, exc) from None
    finally:
        engine.dispose()


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def ensure_schema(engine: Engine, url: str, *, upgrade: bool) -> None:
    with engine.connect() as connection:
        if current_revision(connection) == SCHEMA_HEAD:
            return
    if upgrade and _created_new(engine, url):
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.connect() as connection, _all_or_nothing(connection):
        if connection.dialect.name == "postgresql":  # two processes creating one schema at
            # once would collide on PostgreSQL's catalog: the second waits, then sees it made
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": SCHEMA_LOCK_KEY})
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in known:
            raise ManifestTooNewError(
                f"manifest {safe_url(url)} has schema revision {current}, newer than this "
                f"migrator knows (latest {head}); upgrade migrator")
        if current == head:
            return
        if not upgrade:
            raise ManifestError(f"manifest {safe_url(url)} needs an upgrade to {head}")
        if current is None:
            log.info("Creating manifest %s (schema %s)", safe_url(url), head)
        else:
            log.warning("Upgrading manifest %s schema %s -> %s", safe_url(url), current, head)
        command.upgrade(alembic_config(connection), "head")


def _created_new(engine: Engine, url: str) -> bool:
    """A database with no table at all gets the newest schema at once, from the models
    (`schema_new.py`), without Alembic; False: it holds something, the revisions decide."""
    from migrator.archive.schema_new import create_new

    with engine.connect() as connection, _all_or_nothing(connection):
        if connection.dialect.name == "postgresql":  # as below: one creator at a time
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": SCHEMA_LOCK_KEY})
        if not create_new(connection):
            return False
    log.info("Creating manifest %s (schema %s)", safe_url(url), SCHEMA_HEAD)
    return True


@contextmanager
def _all_or_nothing(connection: Connection) -> Iterator[None]:
    """One transaction for a whole schema change, its CREATE TABLEs included.

    Left to itself, Python's sqlite3 commits before each DDL statement, so a full disk (or a
    kill -9) half-way through creating the manifest would leave half a schema that no later
    run could open or finish. Here it is told to keep out, and the transaction is ours.
    """
    sqlite = connection.dialect.name == "sqlite"
    driver: Any = connection.connection.driver_connection
    if sqlite:
        driver.isolation_level = None  # no implicit COMMIT/BEGIN around statements
    try:
        with connection.begin():
            if sqlite:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield
    finally:
        if sqlite:
            driver.isolation_level = ""  # back to the default for the pool's next user


def open_error(url: str, exc: SQLAlchemyError) -> ManifestError:
    """One line for a manifest that cannot be opened: a server that cannot be reached is
    named by host and port (exit 6, as any unreachable server); anything else says what the
    database answered, first line only (exit 9). The password is never shown."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = reason[0] if reason else exc.__class__.__name__
    if not url.startswith("sqlite") and _unreachable(first):
        from sqlalchemy.engine import make_url

        where = make_url(url)
        detail = first.rsplit(" failed: ", 1)[-1] if " failed: " in first else first
        return ManifestUnreachableError(
            f"cannot reach the manifest database at {where.host}:{where.port or 'default port'}"
            f" (database {where.database}): {detail}")
    return ManifestError(f"cannot open manifest {safe_url(url)}: {exc.__class__.__name__}: {first}")


def lost_server(url: str, exc: SQLAlchemyError) -> bool:
    """Whether `exc` says the database server is gone (stopped, crashed, out of reach)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return not url.startswith("sqlite") and bool(reason) and _unreachable(reason[0])


def _unreachable(text: str) -> bool:
    lowered = text.lower()
    return any(sign in lowered for sign in (
        "connection refused", "timeout expired", "could not translate host name",
        "no route to host", "network is unreachable", "name or service not known",
        "connection timed out", "server closed the connection",
        "terminating connection due to", "the connection is closed", "connection is lost"))


def safe_url(url: str) -> str:
    """A database URL fit for a message: the password (if any) masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown without its userinfo
        return url.split("@")[-1]
