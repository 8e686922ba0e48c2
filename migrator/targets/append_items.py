"""What one APPEND is: the message to send, how it ended, its command line, and which flags
a target folder keeps. Pure values and formatting; the pipelined writer is targets/imap.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from migrator.folders import imap_name
from migrator.retry import throttle_backoff
from migrator.targets.office365 import NOT_CONNECTED, refusal

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ATOM = re.compile(r'[^(){ %*"\\\]\x00-\x1f\x7f-\U0010ffff]+\Z')  # RFC 3501 ATOM-CHAR


# A tagged NO with no response code ("NO System I/O error"): nothing was stored (RFC 3501
# 6.3.11), so sending the message once more cannot make a duplicate. With a code ([TRYCREATE],
# [OVERQUOTA], [LIMIT]...) or as BAD it is not this.
PLAIN_NO = "plain-no"

Body = bytes | Callable[[], Iterable[bytes | memoryview]]


@dataclass(frozen=True)
class AppendItem:
    """One message to append; `ref` is the caller's handle (e.g. its push row)."""

    ref: int
    folder: str  # Unicode target folder name
    flags: tuple[str, ...]
    internaldate: datetime | None
    size: int
    store_flagged: bool = False  # the caller sets \Flagged again with STORE (Exchange)


@dataclass(frozen=True)
class AppendOutcome:
    """How one APPEND ended. status: done | throttled | refused | failed | unknown."""

    item: AppendItem
    status: str
    text: str = ""
    uidvalidity: int | None = None
    uid: int | None = None
    retry_after: float | None = None
    reason: str = ""  # for refused: too-big | refused; for failed: PLAIN_NO or ""


@dataclass(frozen=True)
class Selected:
    """What SELECT told about a folder."""

    name: str
    uidvalidity: int | None
    exists: int
    permanent_flags: tuple[str, ...] | None  # None: the server did not say (all allowed)
    uidnext: int | None = None  # None: the server did not say

    def keeps(self, flag: str) -> bool:
        """Does the folder store this flag permanently (RFC 3501 section 7.1, PERMANENTFLAGS)?"""
        if self.permanent_flags is None or flag in SYSTEM_FLAGS:
            return True
        lowered = {f.lower() for f in self.permanent_flags}
        return "\\*" in lowered or flag.lower() in lowered


def imap_date(value: datetime) -> str:
    """INTERNALDATE as APPEND wants it (RFC 3501 date-time), in the value's own offset."""
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
            f"{sign}{minutes // 60:02d}{minutes % 60:02d}")


@lru_cache(maxsize=1024)
def quoted(text: str) -> bytes:
    """A mailbox name as an IMAP quoted string (after modified UTF-7, it is 7-bit); kept per
    name, as every APPEND names its folder (encoding it each time was 3% of a push's CPU)."""
    raw = imap_name(text).encode("ascii")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def append_command(tag: bytes, item: AppendItem, flags: tuple[str, ...], nonsync: bool) -> bytes:
    """`TAG APPEND "folder" (flags) "date" {n+}` plus CRLF; the literal follows."""
    parts = [tag, b"APPEND", quoted(item.folder)]
    if flags:
        parts.append(b"(" + " ".join(flags).encode("ascii") + b")")
    if item.internaldate is not None:
        parts.append(b'"' + imap_date(item.internaldate).encode("ascii") + b'"')
    parts.append(b"{%d%s}" % (item.size, b"+" if nonsync else b""))
    return b" ".join(parts) + b"\r\n"


def refused_or_failed(item: AppendItem, text: str, *, plain_no: bool = False) -> AppendOutcome:
    """`plain_no`: the reply was a tagged NO with no response code."""
    backoff = throttle_backoff(text)
    if backoff is not None or NOT_CONNECTED in text:
        return AppendOutcome(item, "throttled", text, retry_after=backoff)
    why = refusal(text)
    if why is not None:
        return AppendOutcome(item, "refused", text, reason=why)
    return AppendOutcome(item, "failed", text, reason=PLAIN_NO if plain_no else "")


@lru_cache(maxsize=4096)
def keep_flags(flags: tuple[str, ...], selected: Selected | None) -> tuple[tuple[str, ...],
                                                                           tuple[str, ...]]:
    """(flags to send, keywords the target cannot keep): \\Deleted and \\Recent never go.
    Kept per (flags, folder): a mailbox has few distinct flag sets, and a push asks twice
    per message (to send, to note what was dropped)."""
    send, dropped = [], []
    for flag in sorted(set(flags)):
        if flag.startswith("\\"):
            canonical = next((f for f in SYSTEM_FLAGS if f.lower() == flag.lower()), None)
            if canonical:
                send.append(canonical)
        elif _ATOM.match(flag) and (selected is None or selected.keeps(flag)):
            send.append(flag)
        else:
            dropped.append(flag)
    return tuple(send), tuple(dropped)
