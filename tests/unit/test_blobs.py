"""Blob store: content addressing, dedup, durability order, crash before rename."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder

MESSAGE = b"From: a@example.org\r\nMessage-ID: <1@x>\r\n\r\nbody\n\xff bare LF\r\n"


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_put_names_blob_by_sha256_and_reads_back(tmp_path: Path, compression: str) -> None:
    store = BlobStore(tmp_path, compression)
    ref = store.put(MESSAGE)
    assert ref.sha256 == hashlib.sha256(MESSAGE).hexdigest() and ref.size == len(MESSAGE)
    assert store.read(ref.sha256) == MESSAGE
    assert store.check(ref.sha256) == "ok"
    suffix = ".eml" if compression == "none" else ".eml.gz"
    assert store.path(ref.sha256) == (tmp_path / "objects" / ref.sha256[:2] /
                                      f"{ref.sha256[2:]}{suffix}")
    assert list(store.iter_shas()) == [ref.sha256]


def test_plain_blob_is_the_exact_bytes(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put(MESSAGE)
    assert store.path(ref.sha256).read_bytes() == MESSAGE


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first, second = store.put(MESSAGE), store.put(MESSAGE)
    assert first == second
    assert len(list((tmp_path / "objects").rglob("*.eml"))) == 1


def test_same_content_in_two_folders_one_blob_two_rows(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    store = BlobStore(tmp_path)
    with manifest.session() as session:
        account = ensure_account(session, "alice", "imap")
        inbox, label = (ensure_folder(session, account, name).id for name in ("INBOX", "Work"))
    add_messages(manifest, store, inbox, [FetchedMessage(MESSAGE, uid=1, uidvalidity=7)])
    add_messages(manifest, store, label, [FetchedMessage(MESSAGE, uid=5, uidvalidity=9)])
    add_messages(manifest, store, label, [FetchedMessage(MESSAGE, uid=5, uidvalidity=9)])
    with manifest.engine.connect() as conn:
        assert conn.execute(text("select count(*) from blobs")).scalar() == 1
        assert conn.execute(text("select count(*) from messages")).scalar() == 2
        assert conn.execute(text("select distinct message_id from messages")).scalar() == "<1@x>"
    manifest.close()


CRASH_BEFORE_RENAME = textwrap.dedent("""
    import os, signal, sys
    from migrator.archive.blobs import BlobStore
    from migrator.archive.db import open_manifest
    from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
    root = sys.argv[1]
    manifest = open_manifest(f"sqlite:///{root}/m.sqlite")
    with manifest.session() as session:
        folder = ensure_folder(session, ensure_account(session, "a", "imap"), "INBOX").id
    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # die just before rename
    add_messages(manifest, BlobStore(root), folder, [FetchedMessage(b"x" * 5000, uid=1)])
""")


def test_write_killed_before_rename_leaves_no_blob_and_no_row(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH_BEFORE_RENAME, str(tmp_path)],
                          capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    store = BlobStore(tmp_path)
    assert list(store.iter_shas()) == []
    assert not store.exists(hashlib.sha256(b"x" * 5000).hexdigest())
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with manifest.engine.connect() as conn:
        assert conn.execute(text("select count(*) from messages")).scalar() == 0
        assert conn.execute(text("select count(*) from blobs")).scalar() == 0
    manifest.close()
    # the next attempt succeeds and is not confused by the leftover temp file
    ref = store.put(b"x" * 5000)
    assert store.check(ref.sha256) == "ok"


def test_failed_write_raises_storage_error_and_leaves_nothing(tmp_path: Path) -> None:
    from migrator.errors import StorageError

    sha = hashlib.sha256(MESSAGE).hexdigest()
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / sha[:2]).write_bytes(b"")  # a file where a directory must go
    with pytest.raises(StorageError, match="cannot write to archive"):
        BlobStore(tmp_path).put(MESSAGE)
    assert not BlobStore(tmp_path).exists(sha)


def test_existing_blob_from_a_killed_run_is_synced_before_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blob renamed into place but never synced (the run died) is made durable again."""
    import migrator.archive.blobs as blobs

    sha = hashlib.sha256(MESSAGE).hexdigest()
    (tmp_path / "objects" / sha[:2]).mkdir(parents=True)
    (tmp_path / "objects" / sha[:2] / f"{sha[2:]}.eml").write_bytes(MESSAGE)  # no fsync
    synced: list[Path] = []
    monkeypatch.setattr(blobs, "sync_filesystem", lambda d: synced.append(d) or True)
    store = BlobStore(tmp_path)
    assert store.put(MESSAGE, defer_file_sync=True).sha256 == sha
    store.sync()
    assert synced == [tmp_path / "objects"]
