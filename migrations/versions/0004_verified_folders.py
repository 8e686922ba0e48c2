"""verified_folders: each target folder's state when verify last found it complete

A re-run's verify compares again only the folders whose target state (UIDVALIDITY, UIDNEXT,
MESSAGES, HIGHESTMODSEQ where offered) or whose archive side (a digest of the messages
expected there and of their push rows) changed since; see migrator/engine/verify/unchanged.py.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verified_folders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("uidnext", sa.BigInteger(), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=True),
        sa.Column("highestmodseq", sa.BigInteger(), nullable=True),
        sa.Column("archive_digest", sa.String(length=64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("target", "folder"),
    )


def downgrade() -> None:
    op.drop_table("verified_folders")
