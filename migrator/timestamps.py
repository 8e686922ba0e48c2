"""Times as users see them: the manifest stores naive UTC, and nothing is shown unlabelled.

Machine output (JSON) carries ISO 8601 UTC with its `+00:00` offset; text for people shows
local time with its offset, so `status` read at 09:00 in Berlin does not look an hour off.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def from_manifest(value: datetime) -> datetime: ...
@overload
def from_manifest(value: None) -> None: ...
def from_manifest(value: datetime | None) -> datetime | None:
    """A manifest time (naive, UTC by convention: see archive.manifest.utcnow), made aware."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def local_text(value: datetime) -> str:
    """`2026-03-01 10:15:00+01:00`: local time, to the second, with its UTC offset."""
    return from_manifest(value).astimezone().isoformat(sep=" ", timespec="seconds")
