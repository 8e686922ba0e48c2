"""The manifest schema this migrator writes, in a module of its own (no SQLAlchemy).

The newest revision in migrations/versions; a test keeps the two equal. Knowing it here lets
an up-to-date manifest open without importing Alembic (most of a command's start-up), and
lets the no-op probe check a manifest with the standard library's sqlite3 alone.
"""

SCHEMA_HEAD = "0006"
