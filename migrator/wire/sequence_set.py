"""IMAP sequence sets (RFC 3501 section 9, `sequence-set`): the UID lists sent on the wire.

The source (UID FETCH, UID SEARCH) and the target (UID STORE) both send UIDs this way; one
function keeps the two from drifting apart.
"""

from __future__ import annotations

from collections.abc import Iterable


def uid_set(uids: Iterable[int]) -> bytes:
    """Sorted UIDs as a compact IMAP sequence set: 1:3,7,9:10 (duplicates collapse)."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    ranges: list[bytes] = []
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        ranges.append(_range(start, previous))
        start = previous = uid
    ranges.append(_range(start, previous))
    return b",".join(ranges)


def _range(first: int, last: int) -> bytes:
    return b"%d" % first if first == last else b"%d:%d" % (first, last)
