"""What is sent for one archived message: its bytes, proven intact, and its INTERNALDATE.

Every message is re-hashed before the target can store it, so a blob damaged on disk is
reported instead of pushed. A small one is read whole and hashed before it is sent; a big one
is read once, in pieces hashed as they go out, and its last piece is given only once the
whole has hashed to its name (`checked_pieces`): a damaged one's literal is never finished,
so the server cannot store it, and the connection is given up.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from io import BufferedIOBase

from migrator.archive.blobs import BlobStore
from migrator.errors import StorageError
from migrator.headers import header_value

STREAM_ABOVE = 1 << 20  # bigger messages are streamed from their file
PIECE = 256 << 10


class BlobDamaged(Exception):
    """The archived file no longer hashes to its name: never send it."""


def _opened(store: BlobStore, sha: str) -> BufferedIOBase:
    """A blob's file, open for reading (gzip-decompressed if it was stored compressed)."""
    path = store.path(sha)
    if not path.exists():
        raise StorageError(f"blob {sha} is missing from the archive ({path})")
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def blob_pieces(store: BlobStore, sha: str) -> Iterator[memoryview]:
    """A blob's bytes in pieces, decompressed if it was stored compressed.

    Each piece is a view of one buffer that the next piece overwrites: use it (hash it,
    send it) before asking for the next. A fresh `bytes` per piece cost a page fault per
    4 KB (pieces are above the mmap threshold, see `budget.release_large_buffers`): about a
    fifth of the CPU of reading a big message.
    """
    buffer = bytearray(PIECE)
    view = memoryview(buffer)
    with _opened(store, sha) as handle:
        while count := handle.readinto(buffer):
            yield view[:count]


def checked_pieces(store: BlobStore, sha: str) -> Iterator[memoryview]:
    """`blob_pieces`, re-hashed as they are read: the last piece comes only if the blob
    hashes to `sha`, else BlobDamaged is raised in its place. Two buffers take turns, so each
    piece is read before the one before it is let go (and the end is known before it)."""
    buffers = (bytearray(PIECE), bytearray(PIECE))
    views = (memoryview(buffers[0]), memoryview(buffers[1]))
    digest = hashlib.sha256()
    turn = 0
    try:
        with _opened(store, sha) as handle:
            count = handle.readinto(buffers[turn])
            while count:
                following = handle.readinto(buffers[1 - turn])
                digest.update(views[turn][:count])
                if not following and digest.hexdigest() != sha:
                    raise BlobDamaged(sha)
                yield views[turn][:count]
                turn, count = 1 - turn, following
    except (OSError, EOFError, zlib.error):  # unreadable (a broken gzip file): damaged too
        raise BlobDamaged(sha) from None
    if digest.hexdigest() != sha:  # an empty file
        raise BlobDamaged(sha)


def first_piece(store: BlobStore, sha: str) -> bytes:
    """The start of a blob (its headers, for a delivery date), not checked."""
    for piece in blob_pieces(store, sha):
        return bytes(piece)
    return b""


def delivery_date(data: bytes) -> datetime | None:
    """When a message without INTERNALDATE arrived: its newest Received header's date, else
    its Date header (RFC 5322 3.6.7, 3.6.1); None (the server's clock) if neither parses."""
    for name in ("Received", "Date"):
        value = header_value(data, name)
        if not value:
            continue
        text = value.rpartition(";")[2] if name == "Received" else value
        try:
            when = parsedate_to_datetime(text.strip())
        except (TypeError, ValueError, IndexError):
            continue
        if when is not None and when.tzinfo is not None and 1970 <= when.year < 10000:
            return when
    return None


def parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
