"""A big message is streamed from its blob in pieces of one reused buffer (plain or gzip)."""

from __future__ import annotations

import hashlib
import os

import pytest

from migrator.archive.blobs import BlobStore
from migrator.engine.push.message import PIECE, BlobDamaged, blob_pieces, check_blob


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_pieces_add_up_to_the_blob_and_the_head_survives_the_next_piece(tmp_path,
                                                                       compression):
    store = BlobStore(tmp_path, compression)
    data = b"Subject: big\r\n\r\n" + os.urandom(3 * PIECE + 1234)
    sha = store.put(data).sha256

    pieces = [bytes(piece) for piece in blob_pieces(store, sha)]
    head = check_blob(store, sha)

    assert b"".join(pieces) == data
    assert len(pieces) == 4
    assert head == data[:PIECE]  # a copy: the buffer it came from was overwritten since


def test_a_damaged_big_blob_is_refused(tmp_path):
    store = BlobStore(tmp_path)
    data = os.urandom(2 * PIECE)
    sha = store.put(data).sha256
    store.path(sha).write_bytes(data[:-1] + b"x")

    with pytest.raises(BlobDamaged):
        check_blob(store, sha)
    assert hashlib.sha256(data).hexdigest() == sha


def test_a_blob_read_whole_prefers_the_plain_file_and_finds_a_gzip_one(tmp_path):
    plain, packed = BlobStore(tmp_path), BlobStore(tmp_path, "gzip")
    first = plain.put(b"plain message").sha256
    second = packed.put(b"packed message").sha256

    assert plain.read(first) == b"plain message"
    assert plain.read(second) == b"packed message"  # any store reads either kind
