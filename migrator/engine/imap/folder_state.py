"""Which folders a pull looks at, and the one rule that lets one be skipped: the manifest's
last sync state against STATUS.

Apart from plan.py (which needs the manifest models) so that the no-op probe, which reads the
manifest with sqlite3 alone, decides by the same definition as a pull.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from migrator.config import Endpoint
from migrator.sources.imap_folders import FolderStatus


@dataclass(frozen=True)
class FolderState:
    """What the manifest remembers of a folder after its last complete sync."""

    folder_id: int
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    message_count: int | None = None
    failed_uids: frozenset[int] = frozenset()  # unresolved pull failures


def unchanged(state: FolderState, status: FolderStatus, condstore: bool) -> bool:
    """True when one STATUS proves nothing changed (needs CONDSTORE: without HIGHESTMODSEQ a
    flag change is invisible to STATUS) and no earlier failure waits for a retry."""
    return (condstore and state.uidvalidity is not None
            and status.uidvalidity == state.uidvalidity
            and status.uidnext == state.uidnext
            and status.messages == state.message_count
            and status.highestmodseq is not None
            and status.highestmodseq == state.highestmodseq
            and not state.failed_uids)


def may_have_new(state: FolderState, status: FolderStatus | None) -> bool:
    """Whether the folder may hold messages the archive lacks: not synced before, a new
    UIDVALIDITY or UIDNEXT (UIDs only grow), no STATUS to tell, or failures to retry.
    False means its sync has flag changes and gone messages at most: nothing to fetch."""
    return (status is None or state.uidvalidity is None
            or status.uidvalidity != state.uidvalidity or status.uidnext != state.uidnext
            or bool(state.failed_uids))


def included(name: str, endpoint: Endpoint) -> bool:
    """Shell-style `include`/`exclude` patterns on the folder's full (decoded) name."""
    return (any(fnmatchcase(name, pattern) for pattern in endpoint.include)
            and not any(fnmatchcase(name, pattern) for pattern in endpoint.exclude))
