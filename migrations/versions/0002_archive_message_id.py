"""archive_message_id: the foreign keys to messages.id get a name of their own

`pushes.message_id` and `source_deletions.message_id` held messages.id while
`messages.message_id` holds the Message-ID header: one name, two meanings. The foreign keys
become `archive_message_id`; the header keeps `message_id`. Batch mode copies each table
(SQLite), carrying its rows, its foreign key and the (archive_message_id, target) unique
constraint over under the new name.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 07:30:00.000000
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("pushes", "source_deletions")


def upgrade() -> None:
    for table in TABLES:
        _drop_copy_left_by_a_crash(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("message_id", new_column_name="archive_message_id")


def downgrade() -> None:
    for table in TABLES:
        _drop_copy_left_by_a_crash(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("archive_message_id", new_column_name="message_id")


def _drop_copy_left_by_a_crash(table: str) -> None:
    """pysqlite commits batch mode's CREATE TABLE _alembic_tmp_<table> on its own, before the
    transaction that copies the rows and swaps the tables begins: a kill in between leaves
    that empty copy behind (the table and the schema revision untouched), and the next
    upgrade would stop on "table already exists"."""
    op.execute(f"DROP TABLE IF EXISTS _alembic_tmp_{table}")
