"""The personal namespace (RFC 2342) of an IMAP server, and what it means for folder names.

Whether `INBOX.` is a prefix every folder lives under (Cyrus, Courier: `INBOX.Work` is the
folder `Work`) or a real parent (Dovecot's default empty prefix: `INBOX.Sub` is a child of
the Inbox) is the server's say in NAMESPACE, never a guess from the delimiter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INBOX = "INBOX"


@dataclass(frozen=True)
class Namespace:
    """The personal namespace: prefix (may be empty) and hierarchy delimiter."""

    prefix: str
    delimiter: str | None


def parse_personal(data: Sequence[object]) -> Namespace:
    """The first personal namespace of a parsed `* NAMESPACE` response, (("INBOX." ".")) NIL
    NIL; no personal namespace (NIL) is an empty prefix."""
    personal = data[0] if data else None
    if not isinstance(personal, list) or not personal or not isinstance(personal[0], list):
        return Namespace("", None)
    entry = personal[0]
    prefix = _text(entry[0]) if entry and isinstance(entry[0], (bytes, str)) else ""
    delimiter = entry[1] if len(entry) > 1 and isinstance(entry[1], (bytes, str)) else None
    return Namespace(prefix, _text(delimiter) if delimiter is not None else None)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def guess_prefix(names: Sequence[str], delimiter: str | None) -> str:
    """For an archive pulled before namespaces were recorded: `INBOX<delim>` is taken for the
    prefix only when every folder but INBOX lies under it (as on Cyrus and Courier, where
    nothing can live elsewhere); a folder beside INBOX proves the prefix is empty."""
    if not delimiter:
        return ""
    prefix = INBOX + delimiter
    others = [name for name in names if name.upper() != INBOX]
    if others and all(name[:len(prefix)].upper() == prefix.upper() for name in others):
        return prefix
    return ""
