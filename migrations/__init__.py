"""Alembic revisions of the manifest schema (installed as `migrator._migrations`)."""
