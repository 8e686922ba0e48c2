"""The archive's one writer: rows only after the batch's blobs are durable, bounded memory,
and a failure that stops every later commit."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.writer import ArchiveWriter, BatchStream, Tuning, Written
from migrator.budget import ByteBudget
from migrator.errors import StorageError


class WatchedStore(BlobStore):
    """A real store that notes when it makes pending writes durable."""

    def __init__(self, root: Path, events: list[str]) -> None:
        super().__init__(root)
        self.events = events

    def sync(self) -> None:
        super().sync()
        self.events.append("sync")


def message(n: int, size: int = 100) -> bytes:
    head = f"Message-ID: <{n}@x>\r\n\r\n".encode()
    return head + b"m" * (size - len(head))


def test_each_batch_is_synced_before_its_rows_are_recorded(tmp_path: Path) -> None:
    events: list[str] = []
    store = WatchedStore(tmp_path, events)
    recorded: list[Written[int]] = []

    def record(written: list[Written[int]]) -> None:
        events.append("record")
        assert all(store.exists(item.ref.sha256) for item in written)
        recorded.extend(written)

    writer: ArchiveWriter[int] = ArchiveWriter(store, ByteBudget(10_000),
                                               Tuning(threads=2, chunk_messages=4))
    stream = BatchStream(writer, record, max_messages=10, max_bytes=1 << 30)
    for n in range(25):
        stream.add(n, message(n))
    stream.close()
    assert events == ["sync", "record"] * 3  # batches of 10, 10 and 5
    assert sorted(item.key for item in recorded) == list(range(25))
    assert {item.message_id for item in recorded} == {f"<{n}@x>" for n in range(25)}


def test_bytes_handed_over_but_unwritten_stay_within_the_budget(tmp_path: Path) -> None:
    budget = ByteBudget(1_000)
    writer: ArchiveWriter[int] = ArchiveWriter(BlobStore(tmp_path), budget,
                                               Tuning(chunk_messages=16))
    stream = BatchStream(writer, lambda written: None, max_messages=1000, max_bytes=1 << 30)
    for n in range(200):
        stream.add(n, message(n))
    stream.close()
    assert 0 < budget.peak <= 1_000
    assert budget.used == 0


def test_a_failed_commit_stops_every_later_commit_and_is_raised(tmp_path: Path) -> None:
    recorded: list[int] = []
    seen: list[BaseException] = []
    all_handed_over = threading.Event()

    def record(written: list[Written[int]]) -> None:
        recorded.append(len(written))
        if len(recorded) == 1:
            all_handed_over.wait(30)  # the later batches are sealed by now
            raise StorageError("disk full")

    writer: ArchiveWriter[int] = ArchiveWriter(BlobStore(tmp_path), ByteBudget(10_000),
                                               on_error=seen.append)
    stream = BatchStream(writer, record, max_messages=2, max_bytes=1 << 30)
    for n in range(6):
        stream.add(n, message(n))
    stream.flush()
    all_handed_over.set()
    with pytest.raises(StorageError, match="disk full"):
        stream.close()
    assert recorded == [2]  # the first batch failed; the two after it were not committed
    assert [str(exc) for exc in seen] == ["disk full"]
