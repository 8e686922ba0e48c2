"""A push worker's next chunk: its intents committed in the background, handed over after."""

from __future__ import annotations

import threading

import pytest

from migrator.engine.push.ahead import ChunkAhead
from migrator.errors import StorageError
from migrator.targets.append_items import AppendItem


def items(count: int) -> list[AppendItem]:
    return [AppendItem(n, "INBOX", (), None, 10) for n in range(count)]


def test_the_items_are_handed_over_only_once_their_commit_has_run():
    ahead = ChunkAhead("test")
    release = threading.Event()
    committed: list[str] = []

    def commit() -> None:
        release.wait(5)
        committed.append("intents")

    chunk = items(3)
    ahead.start(chunk, commit)
    assert ahead.holding
    threading.Timer(0.05, release.set).start()
    assert ahead.take() == chunk
    assert committed == ["intents"]  # never sent before its intents are durable
    assert not ahead.holding
    ahead.close()


def test_a_failed_commit_is_raised_to_the_worker_and_nothing_is_handed_over():
    ahead = ChunkAhead("test")

    def commit() -> None:
        raise StorageError("cannot write manifest: disk full")

    ahead.start(items(2), commit)
    with pytest.raises(StorageError, match="disk full"):
        ahead.take()
    assert not ahead.holding
    ahead.close()


def test_close_waits_for_a_commit_still_running():
    ahead = ChunkAhead("test")
    done = threading.Event()

    def commit() -> None:
        threading.Event().wait(0.05)
        done.set()

    ahead.start(items(1), commit)
    ahead.close()
    assert done.is_set()
