"""A big message is streamed from its blob in pieces of one reused buffer (plain or gzip)."""

from __future__ import annotations

import hashlib
import os

import pytest

from migrator.archive.blobs import BlobStore
from migrator.engine.push.message import (
    PIECE,
    BlobDamaged,
    blob_pieces,
    checked_pieces,
    first_piece,
)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_pieces_add_up_to_the_blob_and_the_head_survives_the_next_piece(tmp_path,
                                                                       compression):
    store = BlobStore(tmp_path, compression)
    data = b"Subject: big\r\n\r\n" + os.urandom(3 * PIECE + 1234)
    sha = store.put(data).sha256

    pieces = [bytes(piece) for piece in blob_pieces(store, sha)]
    head = first_piece(store, sha)

    assert b"".join(pieces) == data
    assert len(pieces) == 4
    assert head == data[:PIECE]  # a copy: the buffer it came from was overwritten since


def test_a_damaged_big_blob_is_refused(tmp_path):
    store = BlobStore(tmp_path)
    data = os.urandom(2 * PIECE)
    sha = store.put(data).sha256
    store.path(sha).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # always a changed byte

    with pytest.raises(BlobDamaged):
        list(checked_pieces(store, sha))
    assert hashlib.sha256(data).hexdigest() == sha


def test_a_blob_read_whole_prefers_the_plain_file_and_finds_a_gzip_one(tmp_path):
    plain, packed = BlobStore(tmp_path), BlobStore(tmp_path, "gzip")
    first = plain.put(b"plain message").sha256
    second = packed.put(b"packed message").sha256

    assert plain.read(first) == b"plain message"
    assert plain.read(second) == b"packed message"  # any store reads either kind


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_checked_pieces_are_the_blob_read_once(tmp_path, compression, monkeypatch):
    store = BlobStore(tmp_path, compression)
    data = b"Subject: big\r\n\r\n" + os.urandom(3 * PIECE + 99)
    sha = store.put(data).sha256
    opened = []
    real_open = open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    pieces = [bytes(piece) for piece in checked_pieces(store, sha)]

    assert b"".join(pieces) == data and len(pieces) == 4
    assert len(opened) == 1  # hashed as it is read, not read once more to be checked first


@pytest.mark.parametrize("damage", ["last byte", "first byte", "cut short", "emptied"])
def test_a_damaged_blob_never_gives_its_last_piece(tmp_path, damage):
    store = BlobStore(tmp_path)
    data = os.urandom(2 * PIECE + 10)
    sha = store.put(data).sha256
    stored = {"last byte": data[:-1] + bytes([data[-1] ^ 1]),
              "first byte": bytes([data[0] ^ 1]) + data[1:],
              "cut short": data[:PIECE], "emptied": b""}[damage]
    store.path(sha).write_bytes(stored)

    given = bytearray()
    with pytest.raises(BlobDamaged):
        for piece in checked_pieces(store, sha):
            given += piece

    assert len(given) < len(stored) or not stored  # the end is withheld
    assert stored.startswith(bytes(given))
