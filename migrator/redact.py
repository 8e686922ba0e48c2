"""Last line of defence for secrets in logs: mask every secret value migrator has resolved.

Secrets are kept out of messages at the source; this filter catches what a library might log
anyway (a server echoing a command, an exception text).
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_LENGTH = 4  # masking "a" everywhere would make logs unreadable and protect nothing
_values: set[str] = set()
_lock = threading.Lock()


def register(value: str) -> None:
    if len(value) >= _MIN_LENGTH:
        with _lock:
            _values.add(value)


def redact(text: str) -> str:
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message with every known secret masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _values:
            record.msg = redact(record.getMessage())
            record.args = None
        return True
