"""The POP3 pull's writer: bounded memory without ever waiting on itself."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import ensure_account, ensure_folder
from migrator.engine.pop3.writer import Stored, open_writer


def test_a_message_over_the_memory_budget_after_small_ones_is_written(tmp_path: Path) -> None:
    """Small messages wait in a chunk before going to the writer thread; a big one arriving
    then must not wait for room that only writing that chunk could free (it hung forever)."""
    manifest = open_manifest(f"sqlite:///{tmp_path / 'manifest.sqlite'}")
    store = BlobStore(tmp_path / "archive")
    with manifest.session() as session:
        folder_id = ensure_folder(session, ensure_account(session, "bob", "pop3"), "INBOX").id
    committed: list[Stored] = []

    def on_committed(stored: Sequence[Stored], rows: int) -> None:
        committed.extend(stored)

    writer = open_writer(manifest, store, folder_id, on_committed, unwritten_bytes=10_000)
    messages = {f"small-{n}": b"Subject: %d\r\n\r\nsmall\r\n" % n for n in range(3)}
    messages["big"] = b"Subject: big\r\n\r\n" + b"y" * 50_000 + b"\r\n"

    def feed() -> None:
        for uidl, data in messages.items():
            writer.add(uidl, data)
        writer.close()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the writer waited for room nothing could free"
    assert {item.key for item in committed} == set(messages)
    assert all(store.read(item.ref.sha256) == messages[item.key] for item in committed)
