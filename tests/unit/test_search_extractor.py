"""The pull's indexer parses in a process of its own: what that process returns, and that
the index is still written when it cannot start, and caught up when it dies."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from migrator.archive import search_extractor
from migrator.archive.blobs import BlobStore
from migrator.archive.search_extractor import ExtractorProcess
from tests.unit.test_search import MESSAGES, archive, indexed, subjects


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
