"""search index: the words of each stored message, for `migrator search`

`search_docs` has one row per indexed blob (the content, not the folder row: a message
archived in two folders is indexed once) with what a result line shows. The words go to
`search_fts`: on SQLite an FTS5 table (contentless: the text is in the blob already, the
index keeps only its terms), on PostgreSQL a tsvector per document under a GIN index.
Existing messages are not indexed here (that could take minutes inside an upgrade): the
first `migrator search` or `migrator index` of an account indexes what is missing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 10:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("date", sa.String(length=40), nullable=True),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE search_fts USING fts5("
                   "sender, recipients, cc, subject, body, content='', "
                   "tokenize='unicode61 remove_diacritics 2')")
    else:
        op.execute("CREATE TABLE search_fts (doc_id INTEGER PRIMARY KEY "
                   "REFERENCES search_docs (id) ON DELETE CASCADE, terms TSVECTOR NOT NULL)")
        op.execute("CREATE INDEX ix_search_fts_terms ON search_fts USING GIN (terms)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_docs")
