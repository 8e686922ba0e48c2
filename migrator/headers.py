"""Read a few header fields from raw message bytes without parsing (or touching) the body.

Malformed mail is normal: these helpers never raise on odd bytes, bare LF or missing fields.
"""

from __future__ import annotations

import functools
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER = 256 * 1024


def header_block(data: bytes) -> bytes:
    match = _HEADER_END.search(data, 0, _MAX_HEADER)
    return data[: match.start()] if match else data[:_MAX_HEADER]


def header_value(data: bytes, name: str) -> str | None:
    """The first value of header `name`, unfolded, decoded leniently; None if absent.

    One regex search over the header block finds the field and its continuation lines, so a
    message costs a C-level scan rather than a Python step per header line (the pulls call
    this for every message they store).
    """
    found = _field(name).search(header_block(data))
    if found is None:
        return None
    first, *followers = _LINE_BREAK.split(found.group(1))
    value = first
    for follower in followers:
        value += b" " + follower.strip()
    return value.strip().decode("utf-8", "replace")


_LINE_BREAK = re.compile(rb"\r?\n")


@functools.cache
def _field(name: str) -> re.Pattern[bytes]:
    """`Name:` at the start of a line, its value and any folded lines (leading SP or TAB)."""
    return re.compile(rb"^" + re.escape(name.encode("ascii")) + rb":([^\n]*(?:\n[ \t][^\n]*)*)",
                      re.IGNORECASE | re.MULTILINE)


def message_id(data: bytes) -> str | None:
    """The Message-ID (with angle brackets when present), or None."""
    value = header_value(data, "Message-ID")
    if not value:
        return None
    match = re.search(r"<[^<>\s]+>", value)
    return match.group(0) if match else value.split()[0]
