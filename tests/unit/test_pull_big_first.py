"""The pull fetches a folder's very large messages before the rest (migrate's tail)."""

from __future__ import annotations

from migrator.engine.imap.plan import ALONE_BYTES, make_batches
from migrator.engine.imap.planner import big_first
from migrator.sources.imap import ListedMessage


def listed(uid: int, size: int) -> ListedMessage:
    return ListedMessage(uid, size, ())


def test_batches_of_one_very_large_message_come_first_and_the_rest_keep_uid_order():
    messages = [listed(uid, 1000) for uid in range(1, 6)] + [listed(6, ALONE_BYTES)] \
        + [listed(uid, 1000) for uid in range(7, 9)] + [listed(9, 30 << 20)]

    batches = big_first(make_batches(messages, max_messages=3))

    assert [[m.uid for m in batch] for batch in batches] == [
        [6], [9], [1, 2, 3], [4, 5], [7, 8]]


def test_a_folder_without_large_messages_keeps_its_order():
    batches = make_batches([listed(uid, 1000) for uid in range(1, 8)], max_messages=3)

    assert big_first(batches) == batches
