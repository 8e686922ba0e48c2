"""Merged folders: which archived rows are copies of another (pushed once), as a table."""

from __future__ import annotations

import pytest

from migrator.engine.push.rows import DONE, FAILED, Candidate, Outcome
from migrator.engine.push.twins import Twin, copies_in_folder, copies_of, mirror

T, U = "Sent Items", "Junk Email"
SENT, SENT2, JUNK = 1, 2, 3


def rows(*spec: tuple[int, int, str, str]) -> list[Twin]:
    return [Twin(*row) for row in spec]


@pytest.mark.parametrize("spec, expected", [
    # the same content in two folders merged into one target: the later id is a copy
    ([(10, SENT, "a", T), (20, SENT2, "a", T)], {20: 10}),
    # the lower id is the primary whichever folder it is in
    ([(20, SENT, "a", T), (10, SENT2, "a", T)], {20: 10}),
    # different content: no copy
    ([(10, SENT, "a", T), (20, SENT2, "b", T)], {}),
    # two identical messages in one folder are two messages
    ([(10, SENT, "a", T), (11, SENT, "a", T)], {}),
    # ... so a third folder's single one is the copy of the first only
    ([(10, SENT, "a", T), (11, SENT, "a", T), (20, SENT2, "a", T)], {20: 10}),
    # two in each folder: pairwise (a multiset union keeps two)
    ([(10, SENT, "a", T), (11, SENT, "a", T), (20, SENT2, "a", T), (21, SENT2, "a", T)],
     {20: 10, 21: 11}),
    # another target folder: not the same place, not a copy
    ([(10, SENT, "a", T), (20, JUNK, "a", U)], {}),
    # three folders, one message
    ([(10, SENT, "a", T), (20, SENT2, "a", T), (30, JUNK, "a", T)], {20: 10, 30: 10}),
])
def test_copies_of(spec: list[tuple[int, int, str, str]], expected: dict[int, int]) -> None:
    assert copies_of(rows(*spec)) == expected
    assert copies_of(reversed(rows(*spec))) == expected  # order of rows does not matter


def test_a_copy_fares_as_its_primary_in_a_recheck() -> None:
    def candidate(mid: int, folder_id: int, sha: str) -> Candidate:
        return Candidate(mid, folder_id, sha, 10, None, (), None, DONE, T, 7, None)

    messages = [candidate(10, SENT, "a"), candidate(11, SENT, "b"),
                candidate(20, SENT2, "a"), candidate(21, SENT2, "c")]
    copies = copies_in_folder(messages, T)
    assert copies == {20: 10}
    outcomes = [Outcome(10, FAILED, T, note="gone"), Outcome(21, DONE, T, 8, 5, "found")]
    assert mirror(copies, outcomes, messages) == [Outcome(20, FAILED, T, note="gone")]
    assert mirror(copies, [Outcome(11, FAILED, T)], messages) == []
