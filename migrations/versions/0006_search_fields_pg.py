"""search index on PostgreSQL: one tsvector per field, for from:, to:, cc: and subject:

0003 gave PostgreSQL a single `terms` vector that nothing filled. FTS5 (SQLite) keeps the
fields apart, and `migrator search` filters by them, so PostgreSQL gets the same: a vector
per field (written by migrator/archive/search_pg.py) and one GIN index on their
concatenation, which serves the unfielded words and narrows the fielded ones. Any
`search_docs` rows are dropped with the old table (nothing filled it; the next search or
`migrator index` indexes every message). SQLite is left as it is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00.000000
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FIELDS = ("sender", "recipients", "cc", "subject", "body")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TABLE search_fts")
    op.execute("DELETE FROM search_docs")
    columns = ", ".join(f"{name} TSVECTOR NOT NULL" for name in FIELDS)
    op.execute("CREATE TABLE search_fts (doc_id INTEGER PRIMARY KEY "
               f"REFERENCES search_docs (id) ON DELETE CASCADE, {columns})")
    op.execute("CREATE INDEX ix_search_fts_terms ON search_fts USING GIN "
               f"(({' || '.join(FIELDS)}))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TABLE search_fts")
    op.execute("DELETE FROM search_docs")
    op.execute("CREATE TABLE search_fts (doc_id INTEGER PRIMARY KEY "
               "REFERENCES search_docs (id) ON DELETE CASCADE, terms TSVECTOR NOT NULL)")
    op.execute("CREATE INDEX ix_search_fts_terms ON search_fts USING GIN (terms)")
