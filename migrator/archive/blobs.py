"""Content-addressed message store: one plain `.eml` file per distinct content.

A blob is named by the SHA-256 of the exact bytes the source served, so any mail tool can read
the archive and identical messages are stored once. Writes are durable before they are
visible: temp file in the same directory, fsync, rename, then fsync of the directory.
The directory fsync may be deferred to `sync()` so a batch pays it once per directory;
callers must call `sync()` before recording the batch in the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from migrator.diskfull import disk_full, is_disk_full
from migrator.durable import atomic_write, fsync_dir, fsync_file, sync_filesystem
from migrator.errors import StorageError

OBJECTS = "objects"
SUFFIXES = {"none": ".eml", "gzip": ".eml.gz"}


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Stores and reads message bytes under `root/objects/ab/<rest>.eml`."""

    def __init__(self, root: Path, compression: str = "none") -> None:
        if compression not in SUFFIXES:
            raise ValueError(f"unknown compression {compression!r}")
        self.root = Path(root)
        self.objects = self.root / OBJECTS
        self.compression = compression
        self._objects = str(self.objects)
        self._made_dirs: set[str] = set()  # directories known to exist: no mkdir per blob
        self._pending_dirs: set[str] = set()
        self._pending_files: list[str] = []
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one flush at a time, so none returns early

    def path(self, sha256: str) -> Path:
        """The file holding a blob, whichever compression it was written with."""
        plain = self._path(sha256, ".eml")
        if plain.exists():
            return plain
        packed = self._path(sha256, ".eml.gz")
        return packed if packed.exists() else self._path(sha256, SUFFIXES[self.compression])

    def _path(self, sha256: str, suffix: str) -> Path:
        return self.objects / sha256[:2] / f"{sha256[2:]}{suffix}"

    def _base(self, sha256: str) -> tuple[str, str]:
        """(directory, path without suffix) as plain strings: put() is a hot path."""
        directory = os.path.join(self._objects, sha256[:2])
        return directory, os.path.join(directory, sha256[2:])

    def exists(self, sha256: str) -> bool:
        return _present(self._base(sha256)[1]) is not None

    def put(self, data: bytes, *, defer_dir_sync: bool = False,
            defer_file_sync: bool = False) -> BlobRef:
        """Store `data` durably (unless it is already there) and return its reference.

        `defer_file_sync` leaves the file's fsync to `sync()` as well, which then makes the
        whole batch durable at once (syncfs(2) on Linux): far cheaper than one fsync per blob.
        """
        ref = BlobRef(sha256_hex(data), len(data))
        directory, base = self._base(ref.sha256)
        existing = _present(base)
        if existing is not None:
            # maybe left by a killed run before its sync: make it durable before a row
            # points at it (with deferred syncs this costs nothing extra)
            self._settle_existing(existing, directory, defer_dir_sync, defer_file_sync)
            return ref
        final = base + SUFFIXES[self.compression]
        payload = gzip.compress(data, mtime=0) if self.compression == "gzip" else data
        try:
            if directory not in self._made_dirs:
                os.makedirs(directory, exist_ok=True)
                self._made_dirs.add(directory)
            atomic_write(final, payload, fsync=not defer_file_sync, sync_dir=False)
            if defer_file_sync:
                with self._lock:
                    self._pending_files.append(final)
                    self._pending_dirs.add(directory)
            elif defer_dir_sync:
                with self._lock:
                    self._pending_dirs.add(directory)
            else:
                fsync_dir(directory)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(f"cannot write to archive {self.root}", exc) from None
            raise StorageError(f"cannot write to archive {self.root}: {exc.strerror}") from None
        return ref

    def _settle_existing(self, path: str, directory: str, defer_dir_sync: bool,
                         defer_file_sync: bool) -> None:
        try:
            if not defer_file_sync:
                fsync_file(path)
            with self._lock:
                if defer_file_sync:
                    self._pending_files.append(path)
                if defer_file_sync or defer_dir_sync:
                    self._pending_dirs.add(directory)
            if not (defer_file_sync or defer_dir_sync):
                fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot sync archive {self.root}: {exc.strerror}") from None

    def sync(self) -> None:
        """Make every deferred write and rename durable; call before committing manifest rows."""
        with self._sync_lock:
            self._sync_pending()

    def _sync_pending(self) -> None:
        with self._lock:
            pending, self._pending_dirs = self._pending_dirs, set()
            files, self._pending_files = self._pending_files, []
        try:
            if not (files and sync_filesystem(self.objects)):  # one syncfs covers it all
                for file in files:
                    fsync_file(file)
                for directory in sorted(pending):
                    fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot sync archive {self.root}: {exc.strerror}") from None

    def read(self, sha256: str) -> bytes:
        try:  # the usual case first, as plain strings: the push reads every blob once
            with open(self._base(sha256)[1] + ".eml", "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            pass
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"blob {sha256} is missing from the archive ({path})") from None
        return gzip.decompress(data) if path.name.endswith(".gz") else data

    def check(self, sha256: str) -> str:
        """'ok', 'missing' or 'corrupted': does the blob re-hash to its name?"""
        if not self.exists(sha256):
            return "missing"
        try:
            data = self.read(sha256)
        except (OSError, gzip.BadGzipFile, EOFError):
            return "corrupted"
        return "ok" if sha256_hex(data) == sha256 else "corrupted"

    def iter_shas(self) -> Iterator[str]:
        """Every blob present on disk (temp files excluded)."""
        if not self.objects.is_dir():
            return
        for directory in sorted(self.objects.iterdir()):
            if not directory.is_dir():
                continue
            for file in sorted(directory.iterdir()):
                if file.name.startswith("."):
                    continue
                stem = file.name.split(".", 1)[0]
                yield directory.name + stem


def _present(base: str) -> str | None:
    """The file holding the blob at `base` (either compression), or None. os.access, not
    os.path.exists: no exception raised for each new blob on the archive's hot path."""
    for suffix in SUFFIXES.values():
        if os.access(base + suffix, os.F_OK):
            return base + suffix
    return None
