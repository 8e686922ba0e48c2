"""Blob rows are inserted idempotently: two writers storing the same content never collide.

Issue 11: `batch run --parallel 2` over two mailboxes holding byte-identical messages failed
one of them with `UNIQUE constraint failed: blobs.sha256` when both writers found the blob
row missing and both inserted it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql

from migrator.archive.blob_rows import insert_blobs, insert_ignoring_duplicates
from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest, open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder

MESSAGE = b"From: a@example.org\r\nMessage-ID: <same@x>\r\n\r\nthe same bytes twice\r\n"


def folders(manifest: Manifest, *names: str) -> list[int]:
    with manifest.session() as session:
        return [ensure_folder(session, ensure_account(session, name, "imap"), "INBOX").id
                for name in names]


def count(manifest: Manifest, table: str) -> int:
    with manifest.engine.connect() as conn:
        return int(conn.execute(text(f"select count(*) from {table}")).scalar_one())


def test_the_same_blob_row_inserted_twice_in_turn_is_one_row(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'manifest.sqlite'}")
    with manifest.session() as session:
        assert insert_blobs(session, {"ab" * 32: 10, "cd" * 32: 20}) == 2
    with manifest.session() as session:
        assert insert_blobs(session, {"ab" * 32: 10, "ef" * 32: 30}) == 1
    assert count(manifest, "blobs") == 3
    manifest.close()


def test_two_writers_storing_the_same_message_at_once_both_succeed(tmp_path: Path) -> None:
    """Both writers reach their blob insert before either commits (held at a barrier): the
    second one then inserts a row the first has just committed."""
    manifest = open_manifest(f"sqlite:///{tmp_path / 'manifest.sqlite'}")
    first, second = folders(manifest, "alice", "bob")
    both_there = threading.Barrier(2, timeout=20)

    def hold_blob_inserts(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO BLOBS"):
            both_there.wait()

    event.listen(manifest.engine, "before_cursor_execute", hold_blob_inserts)
    errors: list[BaseException] = []

    def pull(folder_id: int) -> None:
        try:
            add_messages(manifest, BlobStore(tmp_path / "archive"), folder_id,
                         [FetchedMessage(MESSAGE, uid=1, uidvalidity=1)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(f,)) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert count(manifest, "blobs") == 1
    assert count(manifest, "messages") == 2
    manifest.close()


def test_postgresql_skips_a_duplicate_blob_row_too() -> None:
    statement = insert_ignoring_duplicates("postgresql")
    assert statement is not None
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (sha256) DO NOTHING" in sql and "RETURNING" in sql
