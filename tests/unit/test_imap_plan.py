"""Folder sync decisions (skip, new, gone, flags, batches) and the byte budget."""

from __future__ import annotations

import threading
import time

import pytest

from migrator.budget import ByteBudget
from migrator.engine.imap.folder_state import may_have_new
from migrator.engine.imap.plan import (
    FolderState,
    Known,
    diff_incremental,
    diff_listing,
    make_batches,
    needs_full_listing,
    unchanged,
)
from migrator.sources.imap import FolderStatus, ListedMessage

STATE = FolderState(folder_id=1, uidvalidity=7, uidnext=10, highestmodseq=50, message_count=9)


@pytest.mark.parametrize("status, condstore, failed, expected", [
    (FolderStatus(7, 10, 9, 50), True, (), True),
    (FolderStatus(7, 10, 9, 51), True, (), False),  # a flag changed
    (FolderStatus(7, 11, 10, 52), True, (), False),  # a new message
    (FolderStatus(7, 10, 8, 52), True, (), False),  # an expunge
    (FolderStatus(8, 10, 9, 50), True, (), False),  # UIDVALIDITY changed
    (FolderStatus(7, 10, 9, None), False, (), False),  # no CONDSTORE: flags unknowable
    (FolderStatus(7, 10, 9, 50), True, (3,), False),  # a failure waits for a retry
])
def test_unchanged_needs_proof(status, condstore, failed, expected):
    state = FolderState(**{**STATE.__dict__, "failed_uids": frozenset(failed)})
    assert unchanged(state, status, condstore) is expected


def test_unchanged_never_for_a_folder_never_synced():
    assert not unchanged(FolderState(folder_id=1), FolderStatus(7, 10, 9, 50), True)


@pytest.mark.parametrize("status, failed, expected", [
    (FolderStatus(7, 10, 9, 51), (), False),  # flags changed: nothing to fetch
    (FolderStatus(7, 10, 8, 52), (), False),  # an expunge: nothing to fetch
    (FolderStatus(7, 10, 9, None), (), False),  # no CONDSTORE, same UIDNEXT
    (FolderStatus(7, 11, 10, 52), (), True),  # a new UID
    (FolderStatus(8, 10, 9, 50), (), True),  # UIDVALIDITY changed: everything again
    (FolderStatus(7, 10, 9, 50), (3,), True),  # a failure waits for a retry
    (None, (), True),  # no STATUS to tell
])
def test_may_have_new_only_when_uids_could_be_new(status, failed, expected):
    state = FolderState(**{**STATE.__dict__, "failed_uids": frozenset(failed)})
    assert may_have_new(state, status) is expected
    assert may_have_new(FolderState(folder_id=1), status) is True  # never synced


@pytest.mark.parametrize("state, selected, condstore, remap, expected", [
    (STATE, FolderStatus(7, 11, 10, 60), True, False, False),
    (STATE, FolderStatus(7, 11, 10, 60), False, False, True),
    (STATE, FolderStatus(7, 11, 10, 60), True, True, True),
    (FolderState(folder_id=1), FolderStatus(7, 11, 10, 60), True, False, True),
    (STATE, FolderStatus(8, 11, 10, 60), True, False, True),
])
def test_needs_full_listing(state, selected, condstore, remap, expected):
    assert needs_full_listing(state, selected, condstore, remap) is expected


def test_diff_listing_finds_new_gone_and_flag_changes():
    listing = {1: ListedMessage(1, 10, ("\\Seen",)),
               2: ListedMessage(2, 20, ("\\Flagged", "\\Seen")),
               4: ListedMessage(4, 40, ())}
    known = {1: Known("\\Seen", False), 2: Known("\\Seen", False), 3: Known("", False),
             5: Known("", True)}
    delta = diff_listing(listing, known)
    assert [m.uid for m in delta.new] == [4]
    assert delta.gone == [3]  # 5 was already gone
    assert delta.flags == {2: "\\Flagged \\Seen"}


def test_diff_incremental_uses_uid_set_and_changed_flags():
    known = {1: Known("", False), 2: Known("\\Seen", False), 3: Known("", False)}
    delta = diff_incremental({1, 2, 9}, {2: ("\\Seen",), 1: ("\\Answered",), 9: ()},
                             {9: ListedMessage(9, 5, ())}, known)
    assert [m.uid for m in delta.new] == [9]
    assert delta.gone == [3]
    assert delta.flags == {1: "\\Answered"}


def test_a_uid_marked_gone_that_the_server_lists_again_is_back():
    """Under one UIDVALIDITY a UID is never reused: a row marked gone whose UID the server
    still lists was marked by mistake (an answer lost while an earlier pull planned)."""
    listing = {1: ListedMessage(1, 10, ("\\Seen",)), 2: ListedMessage(2, 20, ())}
    known = {1: Known("", True), 2: Known("", False), 3: Known("", True)}
    full = diff_listing(listing, known)
    assert full.back == [1] and full.gone == [] and not full.new
    assert full.flags == {1: "\\Seen"}
    delta = diff_incremental({1, 2}, {}, {}, known)
    assert delta.back == [1] and delta.gone == [] and not delta.new


def test_batches_bounded_by_count_and_bytes_large_ones_alone():
    messages = [ListedMessage(uid, size, ()) for uid, size in
                [(1, 10), (2, 10), (3, 10), (4, 50), (5, 10), (6, 500), (7, 10)]]
    batches = make_batches(messages, max_messages=3, max_bytes=60, alone_bytes=400)
    assert [[m.uid for m in b] for b in batches] == [[1, 2, 3], [4, 5], [6], [7]]
    assert all(sum(m.size for m in b) <= 60 or len(b) == 1 for b in batches)


def test_budget_blocks_until_released_and_lets_one_oversized_message_through_alone():
    budget = ByteBudget(100)
    budget.reserve(60)
    got = threading.Event()

    def big():
        budget.reserve(500)
        got.set()

    thread = threading.Thread(target=big)
    thread.start()
    assert not got.wait(0.1)  # 60 held: the oversized one waits for an empty budget
    budget.release(60)
    assert got.wait(5)
    thread.join()
    assert budget.used == 500 and budget.peak == 500


def test_budget_serves_waiters_in_order():
    budget = ByteBudget(100)
    budget.reserve(90)
    order = []

    def take(name, size):
        budget.reserve(size)
        order.append(name)

    first = threading.Thread(target=take, args=("large", 100))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=take, args=("small", 5))  # would fit, but must queue
    second.start()
    time.sleep(0.05)
    assert order == []
    budget.release(90)
    first.join(5)
    budget.release(100)
    second.join(5)
    assert order == ["large", "small"]
