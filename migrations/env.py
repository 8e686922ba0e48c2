"""Alembic environment: migrator passes its own open connection in `config.attributes`."""

from alembic import context

from migrator.archive.manifest import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
)
with context.begin_transaction():
    context.run_migrations()
