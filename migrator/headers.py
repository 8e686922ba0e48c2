"""Read a few header fields from raw message bytes without parsing (or touching) the body.

Malformed mail is normal: these helpers never raise on odd bytes, bare LF or missing fields.
"""

from __future__ import annotations

import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER = 256 * 1024


def header_block(data: bytes) -> bytes:
    match = _HEADER_END.search(data, 0, _MAX_HEADER)
    return data[: match.start()] if match else data[:_MAX_HEADER]


def header_value(data: bytes, name: str) -> str | None:
    """The first value of header `name`, unfolded, decoded leniently; None if absent."""
    lines = re.split(rb"\r?\n", header_block(data))
    wanted = name.lower().encode("ascii") + b":"
    for index, line in enumerate(lines):
        if line[: len(wanted)].lower() != wanted:
            continue
        value = line[len(wanted):]
        for follower in lines[index + 1:]:
            if follower[:1] not in (b" ", b"\t"):
                break
            value += b" " + follower.strip()
        return value.strip().decode("utf-8", "replace")
    return None


def message_id(data: bytes) -> str | None:
    """The Message-ID (with angle brackets when present), or None."""
    value = header_value(data, "Message-ID")
    if not value:
        return None
    match = re.search(r"<[^<>\s]+>", value)
    return match.group(0) if match else value.split()[0]
