"""BlobStore.put(defer_file_sync=True): a batch made durable by one sync() call."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator import durable
from migrator.archive import blobs
from migrator.archive.blobs import BlobStore, sha256_hex
from migrator.errors import StorageError

DATA = [b"message %d\r\n" % n * (n + 1) for n in range(20)]


def test_deferred_blobs_are_readable_and_synced_once(tmp_path: Path, monkeypatch) -> None:
    calls: list[Path] = []
    real = durable._syncfs

    def counting(fd: int) -> int:
        calls.append(tmp_path)
        return real(fd) if real is not None else 0

    monkeypatch.setattr(durable, "_syncfs", counting)
    store = BlobStore(tmp_path)
    refs = [store.put(data, defer_file_sync=True) for data in DATA]
    store.sync()
    assert len(calls) == 1
    assert [store.read(ref.sha256) for ref in refs] == DATA
    assert all(store.check(sha256_hex(data)) == "ok" for data in DATA)
    store.sync()  # nothing pending: no second filesystem sync
    assert len(calls) == 1


def test_without_syncfs_each_deferred_file_is_fsynced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(durable, "_syncfs", None)
    synced: list[Path] = []
    monkeypatch.setattr(blobs, "fsync_file", lambda path: synced.append(Path(path)))
    store = BlobStore(tmp_path)
    refs = [store.put(data, defer_file_sync=True) for data in DATA[:5]]
    store.sync()
    assert sorted(synced) == sorted(store.path(ref.sha256) for ref in refs)


def test_a_failing_filesystem_sync_is_a_storage_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(durable, "_syncfs", lambda fd: -1)
    store = BlobStore(tmp_path)
    store.put(b"x", defer_file_sync=True)
    with pytest.raises(StorageError, match="cannot sync archive"):
        store.sync()


