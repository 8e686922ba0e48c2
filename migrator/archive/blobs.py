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
        self._pending_dirs: set[Path] = set()
        self._lock = threading.Lock()

    def path(self, sha256: str) -> Path:
        """The file holding a blob, whichever compression it was written with."""
        plain = self._path(sha256, ".eml")
        if plain.exists():
            return plain
        packed = self._path(sha256, ".eml.gz")
        return packed if packed.exists() else self._path(sha256, SUFFIXES[self.compression])

    def _path(self, sha256: str, suffix: str) -> Path:
        return self.objects / sha256[:2] / f"{sha256[2:]}{suffix}"

    def exists(self, sha256: str) -> bool:
        return self._path(sha256, ".eml").exists() or self._path(sha256, ".eml.gz").exists()

    def put(self, data: bytes, *, defer_dir_sync: bool = False) -> BlobRef:
        """Store `data` durably (unless it is already there) and return its reference."""
        ref = BlobRef(sha256_hex(data), len(data))
        if self.exists(ref.sha256):
            return ref
        final = self._path(ref.sha256, SUFFIXES[self.compression])
        payload = gzip.compress(data, mtime=0) if self.compression == "gzip" else data
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomically(final, payload)
            if defer_dir_sync:
                with self._lock:
                    self._pending_dirs.add(final.parent)
            else:
                fsync_dir(final.parent)
        except OSError as exc:
            raise StorageError(f"cannot write to archive {self.root}: {exc.strerror}") from None
        return ref

    def _write_atomically(self, final: Path, payload: bytes) -> None:
        temp = final.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{final.name}")
        try:
            with open(temp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def sync(self) -> None:
        """Make every deferred rename durable; call before committing manifest rows."""
        with self._lock:
            pending, self._pending_dirs = self._pending_dirs, set()
        try:
            for directory in sorted(pending):
                fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot sync archive {self.root}: {exc.strerror}") from None

    def read(self, sha256: str) -> bytes:
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


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
