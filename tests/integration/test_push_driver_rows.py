"""A push's intents and outcomes go through the database driver (engine/push/driver_rows.py):
on SQLite and on PostgreSQL the rows read back through the ORM as SQLAlchemy wrote them
(states, attempts, UIDs, kept folders, `updated_at` a datetime of this write, and on
PostgreSQL a NUL in a server's text replaced as for every other write)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.archive.manifest import MessageRow, PushRow, utcnow
from migrator.engine.push.rows import DONE, FAILED, INTENT, Outcome, write_intents, write_outcomes

TARGET = "user@target"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'manifest.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def rows(manifest, ids):  # type: ignore[no-untyped-def]
    with manifest.session() as session:
        found = session.scalars(select(PushRow).where(PushRow.target == TARGET)).all()
        return {ids.index(r.archive_message_id): (r.target_folder, r.state, r.attempts,
                                                  r.target_uidvalidity, r.target_uid,
                                                  r.last_error, r.updated_at) for r in found}


def test_intents_outcomes_and_second_intents_read_back_as_written(url: str,
                                                                  tmp_path: Path) -> None:
    manifest = open_manifest(url)
    with manifest.session() as session:
        folder = ensure_folder(session, ensure_account(session, "bob", "imap"), "INBOX").id
    add_messages(manifest, BlobStore(tmp_path), folder, [
        FetchedMessage(f"Subject: {n}\r\n\r\n{n}\r\n".encode(), uid=n + 1, uidvalidity=1)
        for n in range(3)])
    with manifest.session() as session:
        ids = list(session.scalars(select(MessageRow.id).order_by(MessageRow.id)))

    before = utcnow()
    with manifest.session() as session:
        write_intents(session, TARGET, [(ids[0], "INBOX"), (ids[1], "Sent Items")])
    first = rows(manifest, ids)
    assert {n: r[:6] for n, r in first.items()} == {
        0: ("INBOX", INTENT, 1, None, None, None),
        1: ("Sent Items", INTENT, 1, None, None, None)}
    assert all(before <= r[6] <= utcnow() for r in first.values())

    with manifest.session() as session:
        write_outcomes(session, TARGET, [Outcome(ids[0], DONE, None, 7, 41),
                                         Outcome(ids[1], FAILED, "Archiv", note="NO\x00quota")])
    nul = "\ufffd" if url.startswith("postgresql") else "\x00"  # PostgreSQL refuses NUL
    assert {n: r[:6] for n, r in rows(manifest, ids).items()} == {
        0: ("INBOX", DONE, 1, 7, 41, None),  # no folder given: the intent's is kept
        1: ("Archiv", FAILED, 1, None, None, f"NO{nul}quota")}

    again = utcnow()
    with manifest.session() as session:  # tried again, and one never tried
        write_intents(session, TARGET, [(ids[0], "INBOX"), (ids[1], "Sent Items"),
                                        (ids[2], "INBOX")])
    last = rows(manifest, ids)
    assert {n: r[:6] for n, r in last.items()} == {
        0: ("INBOX", INTENT, 2, None, None, None),
        1: ("Sent Items", INTENT, 2, None, None, None),
        2: ("INBOX", INTENT, 1, None, None, None)}
    assert all(again <= r[6] <= utcnow() for r in last.values())
