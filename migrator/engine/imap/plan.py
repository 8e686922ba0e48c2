"""What a folder sync must do, decided from the manifest's view and the server's answers.

Pure functions, no I/O: whether a folder can be skipped, which messages are new, which are
gone, whose flags changed, and how the new ones are cut into FETCH batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from migrator.archive.manifest import flags_text
from migrator.engine.imap.folder_state import FolderState, unchanged
from migrator.sources.imap import FolderStatus, ListedMessage

MAX_BATCH_MESSAGES = 500
MAX_BATCH_BYTES = 16 * 1024 * 1024
ALONE_BYTES = 4 * 1024 * 1024  # a message this large is fetched in a batch of its own


@dataclass(frozen=True, slots=True)  # one per message of the folder being planned
class Known:
    """A message the manifest holds for the folder's current UIDVALIDITY."""

    flags: str  # space-separated, sorted (as the manifest stores them)
    gone: bool


@dataclass
class FolderDelta:
    """The work one folder needs."""

    new: list[ListedMessage] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    # archived as gone, yet the server lists them: under one UIDVALIDITY a UID names one
    # message for good, so they never left (an answer lost while an earlier pull planned)
    back: list[int] = field(default_factory=list)
    flags: dict[int, str] = field(default_factory=dict)  # uid -> new flags text


def needs_full_listing(state: FolderState, selected: FolderStatus, condstore: bool,
                       remap: bool) -> bool:
    """The incremental path (UID SEARCH + CHANGEDSINCE) needs CONDSTORE and a finished
    earlier sync under the same UIDVALIDITY; otherwise list every message."""
    return (remap or not condstore or state.highestmodseq is None
            or state.uidvalidity != selected.uidvalidity or selected.highestmodseq is None)


def diff_listing(listing: Mapping[int, ListedMessage], known: Mapping[int, Known]) -> FolderDelta:
    """Compare a full listing (every UID with size and flags) with the manifest."""
    delta = FolderDelta()
    for uid in sorted(listing):
        entry = known.get(uid)
        if entry is None:
            delta.new.append(listing[uid])
            continue
        if entry.gone:
            delta.back.append(uid)
        if entry.flags != flags_text(listing[uid].flags):
            delta.flags[uid] = flags_text(listing[uid].flags)
    delta.gone = sorted(uid for uid, entry in known.items()
                        if not entry.gone and uid not in listing)
    return delta


def diff_incremental(uids: set[int], changed: Mapping[int, Sequence[str]],
                     new: Mapping[int, ListedMessage], known: Mapping[int, Known]) -> FolderDelta:
    """Compare the server's UID set, the flags changed since the last sync and the listing
    of unknown UIDs with the manifest."""
    delta = FolderDelta(new=[new[uid] for uid in sorted(new) if uid not in known])
    for uid, flags in changed.items():
        entry = known.get(uid)
        if entry is not None and entry.flags != flags_text(flags):
            delta.flags[uid] = flags_text(flags)
    delta.gone = sorted(uid for uid, entry in known.items()
                        if not entry.gone and uid not in uids)
    delta.back = sorted(uid for uid, entry in known.items() if entry.gone and uid in uids)
    return delta


def make_batches(messages: Sequence[ListedMessage], max_messages: int = MAX_BATCH_MESSAGES,
                 max_bytes: int = MAX_BATCH_BYTES,
                 alone_bytes: int = ALONE_BYTES) -> list[list[ListedMessage]]:
    """Cut messages (in UID order) into FETCH batches bounded by count and bytes; a very large
    message goes alone, so no batch holds two of them."""
    batches: list[list[ListedMessage]] = []
    current: list[ListedMessage] = []
    size = 0
    for message in sorted(messages, key=lambda m: m.uid):
        alone = message.size >= alone_bytes
        if current and (alone or len(current) >= max_messages
                        or size + message.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        if alone:
            batches.append([message])
            continue
        current.append(message)
        size += message.size
    if current:
        batches.append(current)
    return batches


__all__ = ["FolderDelta", "FolderState", "Known", "diff_incremental", "diff_listing",
           "make_batches", "needs_full_listing", "unchanged"]
