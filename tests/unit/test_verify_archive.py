"""`migrator verify --archive` finds flipped bytes, deleted blobs and orphan rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from tests.cli_runner import json_result, run_cli
from tests.world.configs import Config

MESSAGES = [b"Message-ID: <m%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n" % (i, i, i)
            for i in range(5)]


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, BlobStore]:
    config = Config(tmp_path / "archive").write(tmp_path / "migrator.toml")
    manifest = open_manifest(f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}")
    store = BlobStore(tmp_path / "archive")
    with manifest.session() as session:
        folder = ensure_folder(session, ensure_account(session, "alice", "imap"), "Work").id
    add_messages(manifest, store, folder, [FetchedMessage(data, uid=i + 1, uidvalidity=1)
                                           for i, data in enumerate(MESSAGES)])
    manifest.close()
    return config, store


def sha_of(store: BlobStore, index: int) -> str:
    import hashlib

    return hashlib.sha256(MESSAGES[index]).hexdigest()


def test_clean_archive_verifies(archive: tuple[Path, BlobStore]) -> None:
    config, _ = archive
    result = run_cli("-c", config, "verify", "--archive")
    assert result.status == 0, result.stderr
    assert "5 blobs checked, 0 missing, 0 corrupted, 0 orphan rows" in result.stdout


def test_flipped_byte_is_reported_with_its_message(archive: tuple[Path, BlobStore]) -> None:
    config, store = archive
    path = store.path(sha_of(store, 2))
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    result = run_cli("-c", config, "verify", "--archive")
    assert result.status == 7
    assert f"corrupted blob {sha_of(store, 2)}" in result.stdout
    assert "alice/Work UID 3 Message-ID <m2@example.org>" in result.stdout
    assert "1 corrupted" in result.stdout


def test_deleted_blob_is_reported_missing(archive: tuple[Path, BlobStore]) -> None:
    config, store = archive
    store.path(sha_of(store, 4)).unlink()
    result = run_cli("-c", config, "--json", "verify", "--archive")
    assert result.status == 7
    report = json_result(result)  # after the notices of what it found, as JSON lines
    assert report["archive"]["missing"] == 1
    assert report["problems"] == [f"missing blob {sha_of(store, 4)}: alice/Work UID 5 "
                                  "Message-ID <m4@example.org>"]


def test_orphan_row_is_reported(archive: tuple[Path, BlobStore], tmp_path: Path) -> None:
    config, store = archive
    with sqlite3.connect(tmp_path / "archive" / "manifest.sqlite") as conn:
        conn.execute("pragma foreign_keys=off")
        conn.execute("delete from blobs where sha256 = ?", (sha_of(store, 0),))
    result = run_cli("-c", config, "verify", "--archive")
    assert result.status == 7
    assert f"orphan-row blob {sha_of(store, 0)}: alice/Work UID 1" in result.stdout


def test_unreferenced_blob_file_is_harmless(archive: tuple[Path, BlobStore]) -> None:
    config, store = archive
    store.put(b"left behind by an interrupted run")
    result = run_cli("-c", config, "verify", "--archive")
    assert result.status == 0
    assert "1 unreferenced files (harmless)" in result.stdout


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_nothing_archived_verifies_and_creates_nothing(tmp_path: Path, json_flag: list[str]
                                                       ) -> None:
    config = Config(tmp_path / "archive").write(tmp_path / "migrator.toml")
    before = sorted(tmp_path.rglob("*"))
    result = run_cli(*json_flag, "-c", config, "verify", "--archive")
    assert result.status == 0, result.stderr
    if json_flag:
        report = json_result(result)
        assert report["nothing_archived"] is True and report["problems"] == []
        assert report["archive"]["blobs"] == 0
    else:
        assert f"nothing archived yet at {tmp_path / 'archive'}" in result.stdout
    assert sorted(tmp_path.rglob("*")) == before  # no manifest, no archive directory
