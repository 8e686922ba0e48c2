"""IMAP sequence sets: the one formatter the source and the target both send UIDs with."""

from __future__ import annotations

import pytest

from migrator.sources.imap import parse_uid_set
from migrator.wire.sequence_set import uid_set


@pytest.mark.parametrize("uids, text", [
    ([1], b"1"), ([3, 1, 2], b"1:3"), ([1, 2, 3, 7, 9, 10], b"1:3,7,9:10"), ([5, 5], b"5"),
    ([1, 2, 4, 6, 7, 8, 10], b"1:2,4,6:8,10"), ({9, 8}, b"8:9"),
])
def test_uid_set_round_trip(uids: list[int], text: bytes) -> None:
    assert uid_set(uids) == text
    assert parse_uid_set(text) == set(uids)


def test_an_empty_uid_set_is_a_programming_error_not_an_empty_command() -> None:
    with pytest.raises(ValueError, match="empty UID set"):
        uid_set([])
