"""The push's chunk queue: each worker keeps to a folder of its own where the waiting chunks
allow, no more than two append into one folder, and the ends (None) come out only after
every chunk."""

from __future__ import annotations

import queue
import threading

import pytest

from migrator.engine.push.chunk_queue import ChunkQueue
from migrator.engine.push.worker import Chunk


def chunk(folder: str, number: int) -> Chunk:
    return Chunk(folder, (number,))  # type: ignore[arg-type]


def filled(*chunks: Chunk | None) -> ChunkQueue:
    work = ChunkQueue(maxsize=len(chunks) or 1)
    for item in chunks:
        work.put(item)
    return work


def test_a_worker_keeps_to_its_folder_and_others_take_folders_nobody_is_on() -> None:
    work = filled(chunk("INBOX", 1), chunk("INBOX", 2), chunk("Sent", 3), chunk("Sent", 4),
                  chunk("Drafts", 5), chunk("INBOX", 6))
    assert work.get(0) == chunk("INBOX", 1)  # nobody on anything: the oldest
    assert work.get(1) == chunk("Sent", 3)  # INBOX is worker 0's
    assert work.get(2) == chunk("Drafts", 5)
    assert work.get(0) == chunk("INBOX", 2)  # its own folder, though Sent 4 is older
    assert work.get(2) == chunk("Sent", 4)  # Drafts is gone: the oldest (Sent, worker 1's)
    assert work.get(1) == chunk("INBOX", 6)


def test_no_more_than_two_workers_append_into_one_folder() -> None:
    work = filled(chunk("INBOX", 1), chunk("INBOX", 2), chunk("INBOX", 3), chunk("Sent", 4))
    assert work.get(0) == chunk("INBOX", 1)
    assert work.get(1) == chunk("Sent", 4)  # a folder nobody is on, though younger
    assert work.get(2) == chunk("INBOX", 2)  # the second on INBOX
    with pytest.raises(queue.Empty):
        work.get(3, timeout=0.01)  # a third would wait on the other two for INBOX's lock
    work.leave(2)  # a worker that stops frees its place
    assert work.get(3, timeout=0.01) == chunk("INBOX", 3)


def test_a_worker_that_waits_for_a_full_folder_takes_what_comes_for_another() -> None:
    work = ChunkQueue(maxsize=4)
    for number in (1, 2, 3):
        work.put(chunk("INBOX", number))
    assert work.get(0) == chunk("INBOX", 1) and work.get(1) == chunk("INBOX", 2)
    waiter = threading.Thread(target=lambda: taken.append(work.get(2, timeout=5)))
    taken: list[Chunk | None] = []
    waiter.start()
    work.put(chunk("Drafts", 4))  # wakes the waiting worker: Drafts is nobody's
    waiter.join(5)
    assert taken == [chunk("Drafts", 4)]
    assert work.get(0) == chunk("INBOX", 3)


def test_the_ends_wait_until_the_chunks_the_others_keep_to_are_taken() -> None:
    work = filled(chunk("INBOX", 1), chunk("INBOX", 2), chunk("INBOX", 3), None, None, None)
    assert work.get(0) == chunk("INBOX", 1) and work.get(1) == chunk("INBOX", 2)
    with pytest.raises(queue.Empty):
        work.get(2, timeout=0.01)  # not an end while a chunk is left, nor that chunk
    assert work.get(1) == chunk("INBOX", 3)
    assert work.get(2, timeout=0.01) is None


def test_the_ends_come_out_after_every_chunk_whatever_the_preference() -> None:
    work = filled(chunk("INBOX", 1), chunk("Sent", 2), None, None)
    assert work.get(0) == chunk("INBOX", 1)
    assert work.get(0) == chunk("Sent", 2)
    assert work.get(1) is None and work.get_nowait(0) is None
    with pytest.raises(queue.Empty):
        work.get_nowait(0)


def test_put_waits_for_room_and_get_for_a_chunk_each_within_its_timeout() -> None:
    work = ChunkQueue(maxsize=1)
    with pytest.raises(queue.Empty):
        work.get(0, timeout=0.01)
    work.put(chunk("INBOX", 1))
    with pytest.raises(queue.Full):
        work.put(chunk("INBOX", 2), timeout=0.01)
    taker = threading.Timer(0.05, lambda: work.get(1))
    taker.start()
    work.put(chunk("INBOX", 2), timeout=5)  # room made by the other thread
    taker.join()
    assert work.get(0, timeout=5) == chunk("INBOX", 2)


def test_the_feeder_puts_the_folders_chunks_in_turn() -> None:
    from migrator.engine.push.job import _across_folders

    inbox = [chunk("INBOX", n) for n in (1, 2, 3)]
    sent, drafts = [chunk("Sent", 4)], [chunk("Drafts", 5), chunk("Drafts", 6)]
    assert list(_across_folders([inbox, sent, drafts])) == [
        inbox[0], sent[0], drafts[0], inbox[1], drafts[1], inbox[2]]
