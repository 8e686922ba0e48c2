"""A brand-new manifest made in one step: the models' tables, what the revisions make that no
model describes (the search index's text table), and the stamp of the newest revision.

Running every revision from nothing (Alembic imported, six revisions, SQLite's table copies)
cost about 0.3 CPU s of a first run, a migrate's included. The result is the same schema:
`tests/unit/test_schema_new.py` (SQLite) and `tests/integration/test_schema_new_pg.py`
(PostgreSQL) compare it with what the revisions make, and show that a later revision upgrades
a manifest made here. Only a database without any table gets this; any other is upgraded by
the revisions (`db.ensure_schema`).
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, text

from migrator.archive.manifest import Base
from migrator.archive.schema_head import SCHEMA_HEAD

# What the revisions leave that the models do not say: the search index's words (0003 on
# SQLite, 0006 on PostgreSQL) and, on PostgreSQL, the names the server gave two constraints
# before 0002 renamed their column (a later revision may drop them by name). A revision that
# changes any of these must change them here too (the tests above say so).
_PG_FIELDS = ("sender", "recipients", "cc", "subject", "body")
_PG_NAMES_BEFORE_0002 = (
    ("pushes", "pushes_archive_message_id_fkey", "pushes_message_id_fkey"),
    ("pushes", "pushes_archive_message_id_target_key", "pushes_message_id_target_key"),
    ("source_deletions", "source_deletions_archive_message_id_fkey",
     "source_deletions_message_id_fkey"),
)
AFTER_THE_MODELS = {
    "sqlite": ("CREATE VIRTUAL TABLE search_fts USING fts5("
               "sender, recipients, cc, subject, body, content='', "
               "tokenize='unicode61 remove_diacritics 2')",),
    "postgresql": (
        *(f"ALTER TABLE {table} RENAME CONSTRAINT {name} TO {old}"
          for table, name, old in _PG_NAMES_BEFORE_0002),
        "CREATE TABLE search_fts (doc_id INTEGER PRIMARY KEY "
        "REFERENCES search_docs (id) ON DELETE CASCADE, "
        + ", ".join(f"{name} TSVECTOR NOT NULL" for name in _PG_FIELDS) + ")",
        "CREATE INDEX ix_search_fts_terms ON search_fts USING GIN "
        f"(({' || '.join(_PG_FIELDS)}))"),
}


def alembic_version_table() -> Table:
    """Alembic's own version table, as `alembic stamp` creates it (alembic/ddl/impl.py)."""
    table = Table("alembic_version", MetaData(), Column("version_num", String(32),
                                                        nullable=False))
    table.append_constraint(PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    return table


def is_empty(connection: Connection) -> bool:
    """No table, view or index at all: nothing a revision would have to upgrade."""
    if connection.dialect.name == "sqlite":
        return connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar() == 0
    from sqlalchemy import inspect

    inspector = inspect(connection)
    return not (inspector.get_table_names() or inspector.get_view_names())


def create_new(connection: Connection) -> bool:
    """Create the newest schema in an empty database, in the caller's transaction; False
    (nothing done) if the database holds anything or has no recipe here."""
    statements = AFTER_THE_MODELS.get(connection.dialect.name)
    if statements is None or not is_empty(connection):
        return False
    Base.metadata.create_all(connection)
    for statement in statements:
        connection.exec_driver_sql(statement)
    version = alembic_version_table()
    version.create(connection)
    connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                       {"head": SCHEMA_HEAD})
    return True
