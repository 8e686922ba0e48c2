"""The local archive: content-addressed message files plus the SQLite manifest."""
