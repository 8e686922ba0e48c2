"""BlobStore.put(defer_file_sync=True): a batch made durable by one sync() call."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import pytest

from migrator.archive import blobs
from migrator.archive.blobs import BlobStore, sha256_hex
from migrator.errors import StorageError

DATA = [b"message %d\r\n" % n * (n + 1) for n in range(20)]


def test_deferred_blobs_are_readable_and_synced_once(tmp_path: Path, monkeypatch) -> None:
    calls: list[Path] = []
    real = blobs._syncfs

    def counting(fd: int) -> int:
        calls.append(tmp_path)
        return real(fd) if real is not None else 0

    monkeypatch.setattr(blobs, "_syncfs", counting)
    store = BlobStore(tmp_path)
    refs = [store.put(data, defer_file_sync=True) for data in DATA]
    store.sync()
    assert len(calls) == 1
    assert [store.read(ref.sha256) for ref in refs] == DATA
    assert all(store.check(sha256_hex(data)) == "ok" for data in DATA)
    store.sync()  # nothing pending: no second filesystem sync
    assert len(calls) == 1


def test_without_syncfs_each_deferred_file_is_fsynced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(blobs, "_syncfs", None)
    synced: list[Path] = []
    monkeypatch.setattr(blobs, "fsync_file", lambda path: synced.append(Path(path)))
    store = BlobStore(tmp_path)
    refs = [store.put(data, defer_file_sync=True) for data in DATA[:5]]
    store.sync()
    assert sorted(synced) == sorted(store.path(ref.sha256) for ref in refs)


def test_a_failing_filesystem_sync_is_a_storage_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(blobs, "_syncfs", lambda fd: -1)
    store = BlobStore(tmp_path)
    store.put(b"x", defer_file_sync=True)
    with pytest.raises(StorageError, match="cannot sync archive"):
        store.sync()



def resident_pages(path: Path) -> int | None:
    """Pages of `path` in the page cache (mincore(2)); None where that cannot be asked."""
    try:
        mincore = ctypes.CDLL(None, use_errno=True).mincore
    except (OSError, AttributeError):
        return None
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    with path.open("r+b") as handle, mmap.mmap(handle.fileno(), size) as mapped:
        exported = (ctypes.c_char * size).from_buffer(mapped)  # only read, never written
        try:
            failed = mincore(ctypes.c_void_p(ctypes.addressof(exported)),
                             ctypes.c_size_t(size), vector)
        finally:
            del exported  # mmap cannot close while a pointer into it exists
    return None if failed else sum(byte & 1 for byte in vector)


def filesystem_type(path: Path) -> str | None:
    """The type of the mount holding `path`, from /proc/mounts (Linux), else None."""
    mounts = Path("/proc/mounts")
    if not mounts.exists():
        return None
    best, kind = "", None
    for line in mounts.read_text().splitlines():
        point, fstype = line.split()[1:3]
        inside = str(path.resolve()).startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fstype
    return kind


def test_synced_blobs_leave_the_page_cache(tmp_path: Path) -> None:
    """A run archiving gigabytes must not evict the machine's working set: once a batch is
    on disk its pages are dropped (tmpfs keeps files in memory, so it cannot show this)."""
    if filesystem_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the temp dir is in memory")
    store = BlobStore(tmp_path)
    data = os.urandom(256 * 1024)
    ref = store.put(data, defer_file_sync=True)
    path = store.path(ref.sha256)
    before = resident_pages(path)
    if before is None:
        pytest.skip("mincore(2) is not available")
    assert before > 0, "just written, the file is cached"
    store.sync()
    assert resident_pages(path) == 0
