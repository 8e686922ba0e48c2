"""How a message is recognised at a target without comparing bytes.

Exchange re-renders what it stores, so a pushed message is found again by its Message-ID, or,
where it has none, by a fingerprint of Date, From and Subject (decoded and whitespace-folded,
so a re-encoded header still matches). On other servers the size is checked as well; Dovecot
and most servers store a bare LF as CRLF, so both sizes count. A server that changed the size
(a header added, say) still matches when the INTERNALDATE the message was appended with and
the fingerprint agree; never by size alone. Matching is by multiset: two identical messages in
a folder need two messages at the target.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from email.header import decode_header, make_header

from migrator.headers import header_block, header_value, message_id

FINGERPRINT_FIELDS = ("Date", "From", "Subject")
INDEX_FIELDS = "MESSAGE-ID DATE FROM SUBJECT"
_SPACE = re.compile(r"\s+")
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True)
class Identity:
    """What identifies a message: Message-ID and fingerprint (either may be empty)."""

    message_id: str
    fingerprint: str

    @property
    def anonymous(self) -> bool:
        """Nothing to recognise it by: only its content can tell."""
        return not self.message_id and not self.fingerprint


@dataclass(frozen=True)
class TargetEntry:
    """A message at the target: its UID, RFC822.SIZE, identity and INTERNALDATE (epoch)."""

    uid: int
    size: int
    identity: Identity
    internaldate: int | None = None


def _decoded(value: str | None) -> str:
    if not value:
        return ""
    try:
        text = str(make_header(decode_header(value)))
    except Exception:  # malformed encoded words: compare the raw text
        text = value
    return _SPACE.sub(" ", text).strip().casefold()


def identity_of(data: bytes) -> Identity:
    """The identity of a message from its bytes (only the header block is read)."""
    head = header_block(data)
    fields = [_decoded(header_value(head, name)) for name in FINGERPRINT_FIELDS]
    fingerprint = "\x1f".join(fields) if any(fields) else ""
    return Identity(message_id(head) or "", fingerprint)


def crlf_size(data: bytes) -> int:
    """The size a server that stores bare LF as CRLF reports (RFC822.SIZE)."""
    return len(data) + len(_BARE_LF.findall(data))


def crlf(data: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", data)


@dataclass(frozen=True)
class Wanted:
    """An archived message looked for at the target; `sizes` empty: size not checked.

    `internaldate` (epoch seconds, as it was appended) tells apart messages sharing a
    Message-ID, and recognises a message with neither Message-ID nor Date/From/Subject
    where bytes cannot be compared (Exchange).
    """

    ref: int
    identity: Identity
    sizes: frozenset[int] = frozenset()
    internaldate: int | None = None


def _fits(wanted: Wanted, entry: TargetEntry) -> bool:
    """Same size where sizes count; same INTERNALDATE where both are known: a different
    one is another message with the same Message-ID (better sent twice than never)."""
    if wanted.sizes and entry.size not in wanted.sizes:
        return False
    return (wanted.internaldate is None or entry.internaldate is None
            or wanted.internaldate == entry.internaldate)


def _fits_resized(wanted: Wanted, entry: TargetEntry) -> bool:
    """A target that changed the size (added a header, re-encoded): the same message only
    if it has the INTERNALDATE it was appended with and the same Date/From/Subject, on
    top of the identity the pool was chosen by. Never by size alone."""
    if not wanted.sizes or entry.size in wanted.sizes:
        return False
    if wanted.internaldate is None or entry.internaldate != wanted.internaldate:
        return False
    mine, theirs = wanted.identity.fingerprint, entry.identity.fingerprint
    return not (mine and theirs and mine != theirs)


def _now() -> float:
    return time.time()


def _fits_date_not_kept(wanted: Wanted, entry: TargetEntry) -> bool:
    """An INTERNALDATE still ahead of now, which the target replaced by the time it stored
    the message (Dovecot does for one over two hours ahead): an earlier date there, and
    the same size where sizes count. Tried after every other fit; real mail is never
    dated ahead, so only such messages are matched this loosely."""
    if wanted.sizes and entry.size not in wanted.sizes:
        return False
    if wanted.internaldate is None or entry.internaldate is None:
        return False
    return entry.internaldate < wanted.internaldate and wanted.internaldate > _now()


def _undecidable(wanted: Wanted, entry: TargetEntry) -> bool:
    """Same Message-ID, another size, and no INTERNALDATE to tell: it may be ours."""
    return bool(wanted.sizes) and entry.size not in wanted.sizes and (
        wanted.internaldate is None or entry.internaldate is None)


class Matcher:
    """Hands out target messages to archived ones, each target message at most once.

    `known_ids` are the Message-IDs of the archived messages expected in the folder: a
    target message carrying one of them never stands in for a message without identity.
    """

    def __init__(self, entries: Iterable[TargetEntry], claimed: Iterable[int] = (),
                 known_ids: Iterable[str] = ()) -> None:
        taken = set(claimed)
        self.known_ids = set(known_ids)
        self.by_id: dict[str, list[TargetEntry]] = defaultdict(list)
        self.by_fingerprint: dict[str, list[TargetEntry]] = defaultdict(list)
        self.by_date: dict[int, list[TargetEntry]] = defaultdict(list)
        self.free: dict[int, TargetEntry] = {}
        for entry in sorted(entries, key=lambda e: e.uid):
            if entry.uid in taken:
                continue
            self.free[entry.uid] = entry
            if entry.identity.message_id:
                self.by_id[entry.identity.message_id].append(entry)
            if entry.identity.fingerprint:
                self.by_fingerprint[entry.identity.fingerprint].append(entry)
            if entry.internaldate is not None:
                self.by_date[entry.internaldate].append(entry)

    def claim(self, wanted: Wanted) -> TargetEntry | None:
        """The first unclaimed target message with the same identity (and size), if any;
        failing that, one the target resized whose INTERNALDATE and fingerprint agree, or
        one whose INTERNALDATE ahead the target did not keep."""
        pool = self._pool(wanted)
        for fits in (_fits, _fits_resized, _fits_date_not_kept):
            for entry in pool:
                if entry.uid in self.free and fits(wanted, entry):
                    del self.free[entry.uid]
                    return entry
        return None

    def undecided(self, wanted: Wanted) -> TargetEntry | None:
        """After `claim` found nothing: an unclaimed message with the same Message-ID that
        only its size sets apart and nothing else can tell (sending again may duplicate)."""
        if not wanted.identity.message_id:
            return None
        return next((entry for entry in self._pool(wanted)
                     if entry.uid in self.free and _undecidable(wanted, entry)), None)

    def _pool(self, wanted: Wanted) -> list[TargetEntry]:
        identity = wanted.identity
        if identity.message_id:
            return self.by_id.get(identity.message_id, [])
        if identity.fingerprint:
            return self.by_fingerprint.get(identity.fingerprint, [])
        if wanted.internaldate is not None:
            return [entry for entry in self.by_date.get(wanted.internaldate, ())
                    if entry.identity.message_id not in self.known_ids]
        return []

    def take(self, uid: int) -> TargetEntry | None:
        """Claim a target message by UID (content matched by the caller)."""
        return self.free.pop(uid, None)

    def candidates(self, sizes: frozenset[int]) -> list[TargetEntry]:
        """Unclaimed target messages of one of these sizes, for a content check."""
        return [entry for entry in self.free.values() if entry.size in sizes]

    def remaining(self) -> list[TargetEntry]:
        return sorted(self.free.values(), key=lambda e: e.uid)
