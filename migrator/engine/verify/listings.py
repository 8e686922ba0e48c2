"""Folder listings carried from a push's re-check to the verify after it, and when one holds.

`migrate` ends with the push's re-check (a SELECT and UID SEARCH of every folder it wrote to)
and then its verify, which asks each folder's STATUS and lists the same UIDs again: a round
trip, and the server's work of listing every message, spent on an answer just had. The
re-check's listings are kept (`Listings.keep`) and verify takes one instead of asking again
when the folder's STATUS proves it still current (`Listings.current`).

Why that proof holds: a listing is kept only when it is one state of the folder, the one its
SELECT reported: as many UIDs as EXISTS said, every one below UIDNEXT (a message come or
gone between the SELECT and the UID SEARCH breaks one or the other). A STATUS with the same
UIDVALIDITY, UIDNEXT and MESSAGES then means nothing was appended since (UIDs only grow from
UIDNEXT) and so nothing expunged either (the count is the same): the folder holds exactly
those UIDs. It is the rule verify/unchanged.py vouches for whole folders with. A server that
gives no UIDNEXT, a STATUS that failed, or anything changed: the folder is listed again.
"""

from __future__ import annotations

from migrator.archive.verified import FolderState
from migrator.targets.append_items import Selected

Listing = tuple[Selected, set[int]]
MAX_KEPT_UIDS = 200_000  # beyond this many (several MB of sets), listings are asked again


def consistent(selected: Selected, uids: set[int]) -> bool:
    """Is this UID SEARCH the folder as its SELECT found it?"""
    return (selected.uidvalidity is not None and selected.uidnext is not None
            and len(uids) == selected.exists
            and (not uids or max(uids) < selected.uidnext))


def unchanged_since(state: FolderState | None, selected: Selected) -> bool:
    """Does a later STATUS show the folder as that SELECT found it?"""
    return (state is not None and state.complete and selected.uidnext is not None
            and (state.uidvalidity, state.uidnext, state.messages)
            == (selected.uidvalidity, selected.uidnext, selected.exists))


class Listings:
    """The latest listing of each folder; each is taken at most once (verify's `_confirmed`
    strikes UIDs off the set it gets, the re-check only reads them)."""

    def __init__(self, limit: int = MAX_KEPT_UIDS) -> None:
        self.kept: dict[str, Listing] = {}
        self.uids = 0
        self.limit = limit

    def keep(self, folder: str, listing: Listing) -> None:
        self._drop(folder)
        selected, uids = listing
        if consistent(selected, uids) and self.uids + len(uids) <= self.limit:
            self.kept[folder] = listing
            self.uids += len(uids)

    def current(self, folder: str, state: FolderState | None) -> Listing | None:
        """The kept listing of `folder` if `state` (its STATUS now) proves it current."""
        listing = self._drop(folder)
        if listing is not None and unchanged_since(state, listing[0]):
            return listing
        return None

    def _drop(self, folder: str) -> Listing | None:
        listing = self.kept.pop(folder, None)
        if listing is not None:
            self.uids -= len(listing[1])
        return listing
