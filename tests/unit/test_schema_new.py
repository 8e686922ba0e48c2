"""A new SQLite manifest is made from the models (`archive/schema_new.py`), not by running
every revision: the same schema, object for object, and later revisions still upgrade it."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine

from migrator.archive.db import SCHEMA_HEAD, alembic_config, migrations_dir, open_manifest


def schema(path: Path) -> dict[str, Any]:
    """Everything SQLite knows of a database's schema, in a form two ways of making the same
    schema agree on: objects by type and name (SQLite's automatic indexes by what they
    index), each table's columns in order, keys, foreign keys, indexes and CHECKs, and the
    full-text table's statement."""
    db = sqlite3.connect(path)
    try:
        found: dict[str, Any] = {}
        objects = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        for kind, name, table, sql in objects:
            if name.startswith("sqlite_autoindex_"):
                continue  # described with its table's indexes below
            entry: dict[str, Any] = {"type": kind, "table": table}
            if kind == "table" and sql and sql.upper().startswith("CREATE VIRTUAL"):
                entry["sql"] = " ".join(sql.split())
            elif kind == "table":
                entry.update(_table(db, name, sql or ""))
            elif kind in ("view", "trigger"):
                entry["sql"] = " ".join((sql or "").split())
            found[f"{kind} {name}"] = entry
        return found
    finally:
        db.close()


def _table(db: sqlite3.Connection, name: str, sql: str) -> dict[str, Any]:
    indexes = []
    for _, index, unique, origin, partial in db.execute(f'PRAGMA index_list("{name}")'):
        columns = [row[2] for row in db.execute(f'PRAGMA index_xinfo("{index}")') if row[5]]
        shown = None if index.startswith("sqlite_autoindex_") else index
        indexes.append((shown, tuple(columns), unique, origin, partial))
    return {
        "columns": db.execute(f'PRAGMA table_xinfo("{name}")').fetchall(),
        "foreign_keys": sorted(row[2:] for row in db.execute(
            f'PRAGMA foreign_key_list("{name}")')),
        "indexes": sorted(indexes, key=repr),
        "checks": sorted(" ".join(c.split()) for c in re.findall(r"CHECK\s*\((.*?)\)\s*[,)]",
                                                              sql, re.S)),
        "named_constraints": sorted(re.findall(r'CONSTRAINT\s+"?(\w+)', sql)),
        "without_rowid": "WITHOUT ROWID" in sql.upper(),
    }


def upgraded_from_nothing(path: Path) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    engine.dispose()


def test_a_new_manifest_has_the_schema_the_revisions_make(tmp_path: Path) -> None:
    upgraded_from_nothing(tmp_path / "revisions.sqlite")
    open_manifest(f"sqlite:///{tmp_path / 'models.sqlite'}").close()

    made = schema(tmp_path / "models.sqlite")
    assert made == schema(tmp_path / "revisions.sqlite")
    assert "table search_fts" in made and "table alembic_version" in made


def test_a_new_manifest_is_made_without_running_the_revisions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_revisions(*_args: object) -> None:
        raise AssertionError("a new manifest ran the revisions")

    monkeypatch.setattr(command, "upgrade", no_revisions)
    empty = tmp_path / "touched.sqlite"
    empty.touch()  # an empty file is an empty database

    open_manifest(f"sqlite:///{empty}").close()
    open_manifest(f"sqlite:///{tmp_path / 'new.sqlite'}").close()

    for path in (empty, tmp_path / "new.sqlite"):
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() \
                == [(SCHEMA_HEAD,)]


def test_a_database_holding_anything_is_left_to_the_revisions(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()

    open_manifest(f"sqlite:///{path}").close()

    assert schema(path) == schema(_upgraded(tmp_path))


def _upgraded(tmp_path: Path) -> Path:
    path = tmp_path / "reference.sqlite"
    upgraded_from_nothing(path)
    return path


LATER = '''"""a later revision (test only)"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    op.execute("INSERT INTO search_fts (rowid, sender, recipients, cc, subject, body) "
               "VALUES (1, 'anna', '', '', 'later', 'words')")
'''


def test_a_later_revision_upgrades_a_new_manifest(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    open_manifest(f"sqlite:///{path}").close()
    scripts = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9001_later.py").write_text(LATER.format(head=SCHEMA_HEAD))

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = alembic_config(connection)
        config.set_main_option("script_location", str(scripts))
        command.upgrade(config, "head")
    engine.dispose()

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("9001",)]
        assert "note" in [row[1] for row in db.execute("PRAGMA table_info(accounts)")]
        assert db.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH 'later'"
                          ).fetchall() == [(1,)]
