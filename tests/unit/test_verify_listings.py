"""Listings kept from a push's re-check for the verify after it (engine/verify/listings.py):
only a listing that is one state of its folder is kept, and it is given out only when a
STATUS shows that state unchanged."""

from __future__ import annotations

from migrator.archive.verified import FolderState
from migrator.engine.verify.listings import Listings, consistent, unchanged_since
from migrator.targets.append_items import Selected


def selected(exists: int, uidnext: int | None = 10, uidvalidity: int | None = 7) -> Selected:
    return Selected("INBOX", uidvalidity, exists, None, uidnext)


def test_a_listing_is_one_state_only_if_count_and_uids_agree_with_its_select():
    assert consistent(selected(3), {2, 5, 9})
    assert consistent(selected(0), set())
    assert not consistent(selected(3), {2, 5})  # one expunged between SELECT and SEARCH
    assert not consistent(selected(3), {2, 5, 10})  # one came at UIDNEXT meanwhile
    assert not consistent(selected(3, uidnext=None), {2, 5, 9})  # the server did not say
    assert not consistent(selected(3, uidvalidity=None), {2, 5, 9})


def test_only_the_same_uidvalidity_uidnext_and_count_prove_it_current():
    listed = selected(3)
    assert unchanged_since(FolderState(7, 10, 3, 99), listed)  # a flag changed: still current
    assert not unchanged_since(FolderState(7, 11, 3), listed)  # appended (and one expunged)
    assert not unchanged_since(FolderState(7, 10, 2), listed)  # expunged
    assert not unchanged_since(FolderState(8, 10, 3), listed)  # the folder made again
    assert not unchanged_since(FolderState(7, None, 3), listed)
    assert not unchanged_since(None, listed)  # its STATUS failed


def test_a_kept_listing_is_given_out_once_and_only_while_current():
    listings = Listings()
    listings.keep("INBOX", (selected(2), {3, 4}))
    listings.keep("Sent", (selected(1), {1}))
    listings.keep("Odd", (selected(2), {1}))  # not one state: not kept

    assert listings.current("Odd", FolderState(7, 10, 2)) is None
    assert listings.current("Sent", FolderState(7, 11, 2)) is None  # changed: asked again
    assert listings.current("Sent", FolderState(7, 10, 1)) is None  # and then no longer kept
    assert listings.current("INBOX", FolderState(7, 10, 2)) == (selected(2), {3, 4})
    assert listings.current("INBOX", FolderState(7, 10, 2)) is None
    assert listings.uids == 0


def test_a_later_listing_replaces_the_earlier_and_the_kept_uids_are_bounded():
    listings = Listings(limit=4)
    listings.keep("INBOX", (selected(3), {1, 2, 3}))
    listings.keep("INBOX", (selected(2, uidnext=12), {1, 11}))  # the re-check after sending
    listings.keep("Sent", (selected(3), {4, 5, 6}))  # 2 + 3 > 4: not kept

    assert listings.uids == 2
    assert listings.current("Sent", FolderState(7, 10, 3)) is None
    assert listings.current("INBOX", FolderState(7, 12, 2)) == (selected(2, uidnext=12), {1, 11})
