"""`verify --source`: what the source holds against what the archive holds, one folder at a
time. Pure functions over listings; `source.py` does the I/O.

The rule that makes this a check that can fail: a folder's last complete sync recorded its
UIDNEXT, so every UID below it existed when that pull listed the folder, and must be in the
archive unless the pull recorded it as failed. Such a UID the archive lacks is **missing**
(a pull that lost it and still recorded the folder as synced). A UID at or above it came
after that pull and is **new** (the next pull fetches it), as is every message of a folder no
pull finished, or of one whose UIDVALIDITY changed since (the next pull re-maps it). POP3 has
no UIDNEXT, but a maildrop lists messages in arrival order: a message listed before one the
archive holds was there when that one was fetched, so it is missing too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Archived:
    """A message row of the folder (under the source's UIDVALIDITY, for IMAP)."""

    size: int
    gone: bool  # the archive marks it gone from the source


@dataclass(frozen=True)
class SyncedAs:
    """What the archive recorded of the folder's last complete sync (IMAP)."""

    uidvalidity: int | None
    uidnext: int | None


@dataclass
class SourceFolderCheck:
    """One source folder: what it holds and how much of it the archive has."""

    folder: str
    at_source: int = 0
    archived: int = 0  # of the messages at the source
    missing: list[str] = field(default_factory=list)  # should be archived and are not
    failed: list[str] = field(default_factory=list)  # the pull recorded them as failed
    size_differs: list[str] = field(default_factory=list)
    new: int = 0  # arrived after the last pull (the next one fetches them)
    gone_from_source: int = 0  # archived, no longer at the source (the archive keeps them)
    note: str = ""  # why every message counts as new, or why the folder was not compared
    unreadable: bool = False  # the source refused to open the folder
    missing_uids: list[int] = field(default_factory=list)  # IMAP: handed to the next pull

    @property
    def ok(self) -> bool:
        return not (self.missing or self.size_differs)

    def as_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "at_source": self.at_source, "archived": self.archived,
                "missing": self.missing, "failed": self.failed,
                "size_differs": self.size_differs, "new": self.new,
                "gone_from_source": self.gone_from_source, "note": self.note,
                "unreadable": self.unreadable}


def compare_imap_folder(name: str, uidvalidity: int | None, listing: Mapping[int, int | None],
                        synced: SyncedAs | None, rows: Mapping[int, Archived],
                        failed: set[int], check_sizes: bool) -> SourceFolderCheck:
    """`listing`: every UID at the source with its RFC822.SIZE (None: not told); `rows`: the
    archive's messages of the folder under `uidvalidity`; `synced`: None when the archive
    has no such folder."""
    check = SourceFolderCheck(name, at_source=len(listing))
    if synced is None or synced.uidvalidity is None or synced.uidnext is None:
        check.note = "no pull has finished this folder yet"
        below: int | None = None
    elif synced.uidvalidity != uidvalidity:
        check.note = "UIDVALIDITY changed since the last pull (the next pull re-maps it)"
        below = None
    else:
        below = synced.uidnext
    for uid in sorted(listing):
        row = rows.get(uid)
        if row is None:
            if uid in failed:
                check.failed.append(f"UID {uid}")
            elif below is not None and uid < below:
                check.missing.append(f"UID {uid}")
                check.missing_uids.append(uid)
            else:
                check.new += 1
        elif row.gone:  # a pull took it for gone: no later pull looks at it again
            check.missing.append(f"UID {uid} (marked gone from the source in the archive)")
            check.missing_uids.append(uid)
        else:
            check.archived += 1
            size = listing[uid]
            if check_sizes and size is not None and size != row.size:
                check.size_differs.append(f"UID {uid} ({size} bytes at the source, "
                                          f"{row.size} archived)")
    check.gone_from_source = sum(1 for uid in rows if uid not in listing)
    return check


def compare_maildrop(name: str, identities: Sequence[str], rows: Mapping[str, Sequence[Archived]],
                     failed: set[str]) -> SourceFolderCheck:
    """`identities`: the maildrop's UIDLs (or fingerprints) in listing order; `rows`: the
    archive's copies by identity. Sizes are not compared: POP3 servers may report LIST sizes
    that differ from the bytes they send (the pull notices and copes)."""
    check = SourceFolderCheck(name, at_source=len(identities))
    last_archived = max((index for index, identity in enumerate(identities)
                         if identity in rows), default=-1)
    for index, identity in enumerate(identities):
        if identity in rows:
            check.archived += 1
        elif identity in failed:
            check.failed.append(f"UIDL {identity}")
        elif index < last_archived:
            check.missing.append(f"UIDL {identity} (message {index + 1})")
        else:
            check.new += 1
    listed = set(identities)
    check.gone_from_source = sum(len(copies) for identity, copies in rows.items()
                                 if identity not in listed)
    return check
