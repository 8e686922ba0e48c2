"""A new PostgreSQL manifest is made from the models (`archive/schema_new.py`): the schema the
revisions make, as PostgreSQL's catalog describes it, and later revisions still apply."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine, inspect, text

from migrator.archive.db import SCHEMA_HEAD, alembic_config, migrations_dir, open_manifest


def schema(url: str) -> dict[str, Any]:
    """Tables with their columns, keys, foreign keys, indexes (with their definitions, GIN
    expressions included), unique and check constraints; views, triggers, sequences."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            found: dict[str, Any] = {}
            for table in sorted(inspector.get_table_names()):
                found[table] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"])
                                for c in inspector.get_columns(table)],
                    "primary_key": inspector.get_pk_constraint(table),
                    "foreign_keys": sorted(map(repr, inspector.get_foreign_keys(table))),
                    "unique": sorted(map(repr, inspector.get_unique_constraints(table))),
                    "checks": sorted(map(repr, inspector.get_check_constraints(table))),
                }
            found["indexes"] = sorted(connection.execute(text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = 'public'")).all())
            found["views"] = inspector.get_view_names()
            found["triggers"] = sorted(connection.execute(text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).all())
            found["sequences"] = sorted(inspector.get_sequence_names())
            return found
    finally:
        engine.dispose()


def test_a_new_manifest_has_the_schema_the_revisions_make(postgres_server, monkeypatch):
    by_revisions = postgres_server.create_database()
    engine = create_engine(by_revisions)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    engine.dispose()
    by_models = postgres_server.create_database()
    with monkeypatch.context() as patched:
        patched.setattr(command, "upgrade", lambda *_: (_ for _ in ()).throw(
            AssertionError("a new manifest ran the revisions")))
        open_manifest(by_models).close()

    made = schema(by_models)
    assert made == schema(by_revisions)
    assert "search_fts" in made and "alembic_version" in made


LATER = '''"""a later revision (test only)"""
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE search_fts ADD COLUMN extra TSVECTOR")
'''


def test_a_later_revision_upgrades_a_new_manifest(postgres_url, tmp_path: Path):
    open_manifest(postgres_url).close()
    scripts = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9001_later.py").write_text(LATER.format(head=SCHEMA_HEAD))

    engine = create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(connection)
            config.set_main_option("script_location", str(scripts))
            command.upgrade(config, "head")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")
                                      ).scalar() == "9001"
            assert "extra" in [c["name"] for c in inspect(connection).get_columns("search_fts")]
    finally:
        engine.dispose()
