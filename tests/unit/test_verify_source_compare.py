"""The rules of `verify --source` (engine/verify/source_compare.py): what is missing, what is
new, what the pull already reported, over listings built here."""

from __future__ import annotations

from migrator.engine.verify.source_compare import (
    Archived,
    SyncedAs,
    compare_imap_folder,
    compare_maildrop,
)

KEPT = Archived(100, gone=False)


def test_below_the_recorded_uidnext_a_uid_the_archive_lacks_is_missing_above_it_new():
    listing = {1: 100, 2: 100, 3: 100, 7: 100, 8: 100}
    check = compare_imap_folder("INBOX", 5, listing, SyncedAs(5, 8), {1: KEPT, 3: KEPT},
                                failed={7}, check_sizes=True)
    assert check.missing == ["UID 2"] and check.missing_uids == [2]
    assert check.failed == ["UID 7"]
    assert check.new == 1  # UID 8 came after the last pull
    assert check.archived == 2 and not check.ok


def test_a_row_marked_gone_for_a_listed_uid_is_missing_and_rows_not_listed_are_gone():
    rows = {1: Archived(100, gone=True), 2: KEPT, 4: KEPT, 5: Archived(9, gone=True)}
    check = compare_imap_folder("INBOX", 5, {1: 100, 2: 100}, SyncedAs(5, 6), rows,
                                failed=set(), check_sizes=True)
    assert check.missing == ["UID 1 (marked gone from the source in the archive)"]
    assert check.missing_uids == [1]
    assert check.gone_from_source == 2  # UIDs 4 and 5


def test_sizes_differ_only_where_compared_and_told():
    rows = {1: Archived(100, gone=False), 2: Archived(200, gone=False)}
    listing = {1: 101, 2: None}
    check = compare_imap_folder("INBOX", 5, listing, SyncedAs(5, 3), rows, set(), True)
    assert check.size_differs == ["UID 1 (101 bytes at the source, 100 archived)"]
    assert not check.ok
    assert compare_imap_folder("INBOX", 5, listing, SyncedAs(5, 3), rows, set(), False).ok


def test_a_folder_never_synced_or_with_a_new_uidvalidity_is_all_new():
    never = compare_imap_folder("New", 1, {1: 5, 2: 5}, None, {}, set(), True)
    assert never.new == 2 and never.ok and "no pull has finished" in never.note
    unfinished = compare_imap_folder("Half", 1, {1: 100, 2: 100}, SyncedAs(None, None), {1: KEPT},
                                     set(), True)
    assert unfinished.archived == 1 and unfinished.new == 1 and unfinished.ok
    remapped = compare_imap_folder("INBOX", 9, {1: 5}, SyncedAs(5, 40), {}, set(), True)
    assert remapped.new == 1 and remapped.ok and "UIDVALIDITY changed" in remapped.note


def test_maildrop_order_tells_missing_from_new():
    rows = {"a": [KEPT], "c": [KEPT], "z": [Archived(1, gone=True), KEPT]}
    check = compare_maildrop("INBOX", ["a", "b", "c", "d", "e"], rows, failed={"d"})
    assert check.missing == ["UIDL b (message 2)"]  # listed before c, which was fetched
    assert check.failed == ["UIDL d"]
    assert check.new == 1  # e, after the last message archived
    assert check.archived == 2 and check.gone_from_source == 2  # both copies of z
    assert not check.ok
