"""The pull's indexer parses in a process of its own: what that process returns (or, for an
SQLite manifest file, writes), that its write failure is the pull's one warning, and that
the index is still written when it cannot start, and caught up when it dies."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from migrator.archive import search_extractor, search_index, search_sqlite
from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.search_extractor import ExtractorProcess
from migrator.archive.search_text import SearchText, extract
from tests.unit.test_search import MESSAGES, archive, indexed, search, subjects


def test_the_process_returns_each_blobs_words_and_none_for_a_missing_one(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put(MESSAGES["INBOX"][0]).sha256
    extractor = ExtractorProcess.start(store)
    extractor.send([sha, "0" * 64])
    replies = extractor.replies()
    found = dict(next(replies))
    extractor.finish()
    assert list(replies) == []  # it ends once stdin is closed
    assert extractor.wait() == 0
    fields = found[sha]
    assert fields is not None and "Zaunkönig" in search_extractor.as_text(fields).body
    assert search_extractor.as_text(fields).subject == "Reisekosten München"
    assert found["0" * 64] is None


def test_without_the_process_the_pull_indexes_in_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_extractor, "COMMAND", (str(tmp_path / "no-such-python"),))
    archive(tmp_path, indexer=True)
    assert indexed(tmp_path) == 3


def test_a_dead_process_is_one_warning_and_search_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    dies = "import sys; sys.stdin.buffer.read(); sys.exit(3)"  # reads its input, says nothing
    monkeypatch.setattr(search_extractor, "COMMAND", (sys.executable, "-c", dies))
    with caplog.at_level(logging.WARNING):
        config = archive(tmp_path, indexer=True)
    assert indexed(tmp_path) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "search index not updated (extraction process exit status 3); `migrator index` "
        "catches up"]
    assert subjects(config, "zaunkönig") == ["Reisekosten München"]
    assert indexed(tmp_path) == 3


def test_for_a_manifest_file_the_process_writes_the_index_itself(tmp_path: Path) -> None:
    config = archive(tmp_path, indexer=False)
    database = tmp_path / "archive" / "manifest.sqlite"
    store = BlobStore(tmp_path / "archive")
    shas = [store.put(raw).sha256 for raws in MESSAGES.values() for raw in raws]
    extractor = search_extractor.ExtractorProcess.start(store, str(database))
    extractor.send([shas[0], "0" * 64])  # a blob it cannot read is skipped
    extractor.send(shas)  # the first again: indexed once
    extractor.finish()
    assert sum(reply for reply in extractor.replies() if isinstance(reply, int)) == 3
    assert extractor.wait() == 0
    assert indexed(tmp_path) == 3
    assert subjects(config, "zaunkönig") == ["Reisekosten München"]
    assert [hit["subject"] for hit in search(config, "from:bob", "budget")] == ["lunch"]


def test_a_write_the_manifest_refuses_is_the_pulls_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    archive(tmp_path, indexer=False)
    database = tmp_path / "archive" / "manifest.sqlite"
    store = BlobStore(tmp_path / "archive")
    stray = store.put(b"Subject: no row points at me\r\n\r\nhello\r\n").sha256
    manifest = open_manifest(f"sqlite:///{database}")
    indexer = search_index.SearchIndexer(manifest, store)
    with caplog.at_level(logging.WARNING):
        indexer.submit([stray])  # search_docs refers to blobs: this row breaks that rule
        indexer.close()
    manifest.close()
    assert indexer.failed
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "search index not updated (IntegrityError); `migrator index` catches up"]


def test_a_garbled_reply_is_one_warning_not_a_dead_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A reply pickle cannot read (here a string that is not UTF-8: UnicodeDecodeError, not
    UnpicklingError) ends the replies; the reading thread must not die with a traceback."""
    garbled = ("import sys; sys.stdin.buffer.read(); "
               "sys.stdout.buffer.write(bytes([0x80, 5, 0x58, 1, 0, 0, 0, 0xff, 0x2e]))")
    monkeypatch.setattr(search_extractor, "COMMAND", (sys.executable, "-c", garbled))
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    with caplog.at_level(logging.WARNING):
        archive(tmp_path, indexer=True)
    assert died == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["search index not updated (UnicodeDecodeError); `migrator index` "
                        "catches up"]


def niceness(pid: int, thread: int) -> int:
    """A thread's nice value, as the kernel reports it (field 19 of its stat line)."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="Linux: a priority per thread")
def test_writing_a_manifest_file_only_the_parsing_thread_is_niced(tmp_path: Path) -> None:
    """The writer holds the write lock the pull's commits wait for: it keeps the pull's
    priority, and only reading and parsing give way."""
    archive(tmp_path, indexer=False)
    store = BlobStore(tmp_path / "archive")
    extractor = ExtractorProcess.start(store, str(tmp_path / "archive" / "manifest.sqlite"))
    pid, ours = extractor.process.pid, os.getpriority(os.PRIO_PROCESS, 0)
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):  # a thread starting or ending
            seen = {int(task.name): niceness(pid, int(task.name))
                    for task in Path(f"/proc/{pid}/task").iterdir()}
        if len(seen) == 2 and seen[pid] != ours:
            break
        time.sleep(0.01)
    extractor.finish()
    assert extractor.wait() == 0
    writer = [nice for thread, nice in seen.items() if thread != pid]
    assert seen.get(pid) == min(19, ours + search_extractor.NICENESS), seen
    assert writer == [ours], seen


def stored_texts(tmp_path: Path) -> list[tuple[str, SearchText]]:
    """An archive without an index, and the texts of its three messages, as the parser gives
    them to the writer."""
    archive(tmp_path, indexer=False)
    store = BlobStore(tmp_path / "archive")
    return [(store.put(raw).sha256, extract(raw)) for raws in MESSAGES.values() for raw in raws]


def test_the_process_writes_in_transactions_of_at_most_locked_docs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each transaction holds the write lock the pull waits for: few messages each."""
    texts = stored_texts(tmp_path)
    monkeypatch.setattr(search_sqlite, "LOCKED_DOCS", 2)
    replies = io.BytesIO()
    writer = search_extractor.IndexWriter(str(tmp_path / "archive" / "manifest.sqlite"), replies)
    writer.put(texts)
    writer.close()
    replies.seek(0)
    assert [pickle.load(replies) for _ in range(2)] == [2, 1]
    assert indexed(tmp_path) == 3


def test_the_process_leaves_the_write_lock_free_after_each_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's busy handler polls: a waiting commit gets in only if the lock stays free."""
    texts = stored_texts(tmp_path)
    monkeypatch.setattr(search_sqlite, "LOCKED_DOCS", 2)
    database = str(tmp_path / "archive" / "manifest.sqlite")
    free: list[bool] = []

    def pause(seconds: float) -> None:  # is the lock free while the writer pauses?
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            free.append(seconds == search_sqlite.LOCK_GAP)
        finally:
            other.close()

    monkeypatch.setattr(search_extractor.time, "sleep", pause)
    writer = search_extractor.IndexWriter(database, io.BytesIO())
    writer.put(texts)
    writer.close()
    assert free == [True, True]  # after each of the two transactions


def test_held_writes_are_written_at_either_limit_and_at_the_flush() -> None:
    written: list[list[str]] = []
    held = search_sqlite.HeldWrites(written.append, len, docs=3, chars=10)
    held.add(["a", "b"])
    assert written == []
    held.add(["c", "dddddddddd", "e"])  # three messages; then ten characters in one
    held.flush()
    held.flush()  # nothing held: no empty transaction
    assert written == [["a", "b", "c"], ["dddddddddd"], ["e"]]
