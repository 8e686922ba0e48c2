"""Open the manifest database: engine, SQLite pragmas, and Alembic upgrade on open.

An older manifest is upgraded (and the upgrade announced); a manifest stamped by a newer
migrator is refused rather than guessed at. A manifest that cannot be opened is an error,
never silently recreated: losing sync state without a word is how mail gets duplicated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from migrator.diskfull import disk_full, is_disk_full
from migrator.errors import ManifestError, ManifestTooNewError

log = logging.getLogger(__name__)

RECORDED_BLOBS = "recorded_blobs"  # session.info key: blobs whose rows this transaction wrote

# The newest revision in migrations/versions; a test keeps the two equal. Knowing it here
# lets an up-to-date manifest open without importing Alembic (most of a command's start-up).
SCHEMA_HEAD = "0004"


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
    """A connected, up-to-date manifest: hands out sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
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
        try:
            with self.sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full(f"cannot write manifest {_safe(str(self.engine.url))}",
                            exc) from exc
        recorded = session.info.get(RECORDED_BLOBS)
        if recorded and self._recorded is not None:
            self._recorded(recorded)

    def close(self) -> None:
        if self._on_close is not None:
            on_close, self._on_close, self._recorded = self._on_close, None, None
            on_close()
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ManifestError(f"cannot create {path.parent}: {exc.strerror}") from None
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_manifest(url: str, *, upgrade: bool = True) -> Manifest:
    """Connect to the manifest at `url`, applying pending schema revisions."""
    engine = make_engine(url)
    try:
        ensure_schema(engine, url, upgrade=upgrade)
    except SQLAlchemyError as exc:
        engine.dispose()
        if is_disk_full(exc):  # creating or upgrading the schema
            raise disk_full(f"cannot write manifest {_safe(url)}", exc) from None
        raise ManifestError(f"cannot open manifest {_safe(url)}: {exc.__class__.__name__}: "
                            f"{exc.orig if hasattr(exc, 'orig') else exc}") from None
    except BaseException:
        engine.dispose()
        raise
    return Manifest(engine)


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def ensure_schema(engine: Engine, url: str, *, upgrade: bool) -> None:
    with engine.connect() as connection:
        if current_revision(connection) == SCHEMA_HEAD:
            return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.connect() as connection, _all_or_nothing(connection):
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in known:
            raise ManifestTooNewError(
                f"manifest {_safe(url)} has schema revision {current}, newer than this "
                f"migrator knows (latest {head}); upgrade migrator")
        if current == head:
            return
        if not upgrade:
            raise ManifestError(f"manifest {_safe(url)} needs an upgrade to {head}")
        if current is None:
            log.info("Creating manifest %s (schema %s)", _safe(url), head)
        else:
            log.warning("Upgrading manifest %s schema %s -> %s", _safe(url), current, head)
        command.upgrade(alembic_config(connection), "head")


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


def _safe(url: str) -> str:
    """A database URL fit for a message: the password (if any) masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown without its userinfo
        return url.split("@")[-1]
