"""migrator: move a mailbox without losing, duplicating or altering a message."""

__version__ = "0.1.0"
