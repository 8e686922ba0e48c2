"""The migrate no-op probe's push queries (archive/lite_push.py, sqlite3) answer exactly as
engine/push/rows.py's (SQLAlchemy) on one manifest holding every push state, so the two
definitions cannot drift apart unnoticed; and the probe's cached-token reader takes a token
exactly when MSAL would."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from migrator import redact
from migrator.archive import lite_push
from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.archive.lite import LiteManifest
from migrator.config import Account, ArchiveSettings, Endpoint, OAuthSettings, Settings
from migrator.engine.push import rows
from migrator.engine.push.candidate import candidate
from migrator.engine.verify.digest import archive_digest
from migrator.engine.verify.quick_gate import ArchiveSide
from migrator.token_cache_read import cached_access_token

TARGET = "office365:bob@contoso.test"
STATES = [None, "done", "done", "refused", "failed", "intent", "done", None]


@pytest.fixture
def manifest_with_pushes(tmp_path: Path) -> tuple[str, list[int]]:
    """Two folders, eight messages in every push state, one gone, pushed to two folders."""
    url = f"sqlite:///{tmp_path / 'manifest.sqlite'}"
    manifest = open_manifest(url)
    store = BlobStore(tmp_path)
    try:
        with manifest.session() as session:
            account = ensure_account(session, "bob", "imap")
            folders = [ensure_folder(session, account, name, delimiter="/").id
                       for name in ("INBOX", "Work")]
        for n in range(8):
            mid = f"Message-ID: <m{n}@x>\r\n" if n != 2 else ""
            add_messages(manifest, store, folders[n % 2], [FetchedMessage(
                f"Subject: {n}\r\n{mid}\r\nbody {n}\r\n".encode(), uid=n + 1,
                uidvalidity=7)])
        with manifest.session() as session:
            ids = rows.live_count(session, folders)
            assert ids == 8
            messages = rows.in_state(session, TARGET, folders, [None])
            pairs = [(m.id, "INBOX" if m.folder_id == folders[0] else "Work")
                     for m in messages]
            states = list(zip(pairs, STATES, strict=True))
            rows.write_intents(session, TARGET, [pair for pair, state in states if state])
            rows.write_outcomes(session, TARGET, [
                rows.Outcome(mid, state, uidvalidity=9, uid=mid)
                for (mid, _), state in states if state not in (None, "intent")])
    finally:
        manifest.close()
    with sqlite3.connect(tmp_path / "manifest.sqlite") as db:
        db.execute("UPDATE messages SET gone_at = '2026-01-01 00:00:00.000000' WHERE id = 3")
    return url, folders


def test_the_sqlite3_queries_answer_as_the_orm_queries(manifest_with_pushes, tmp_path):
    url, folders = manifest_with_pushes
    manifest = open_manifest(url)
    db = sqlite3.connect(tmp_path / "manifest.sqlite")
    try:
        with manifest.session() as session:
            account_id = 1
            assert lite_push.pins(db, TARGET, account_id) == rows.pins(session, TARGET,
                                                                        account_id)
            done = rows.done_sources(session, TARGET, folders)
            assert lite_push.done_sources(db, TARGET, folders) == done and done
            for folder in ("INBOX", "Work", "Elsewhere"):
                for planned in ([], folders[:1], folders):
                    orm = rows.expected_in(session, TARGET, folder, planned,
                                           done.get(folder, set()))
                    lite = [candidate(row) for row in lite_push.expected_in(
                        db, TARGET, folder, planned, done.get(folder, set()))]
                    assert lite == orm
            assert lite_push.live_count(db, folders) == rows.live_count(session, folders) == 7
            pending = rows.pending(session, TARGET, folders, 0, 100)
            assert pending and lite_push.anything_to_push(db, TARGET, folders)
    finally:
        db.close()
        manifest.close()


def test_nothing_to_push_only_when_every_live_message_is_settled(manifest_with_pushes,
                                                                  tmp_path):
    _, folders = manifest_with_pushes
    with sqlite3.connect(tmp_path / "manifest.sqlite") as db:
        db.execute("UPDATE pushes SET state = 'done'")
        db.execute("INSERT INTO pushes (archive_message_id, target, target_folder, state, "
                   "attempts, updated_at) SELECT id, ?, 'INBOX', 'done', 1, "
                   "'2026-01-01 00:00:00.000000' FROM messages WHERE id NOT IN "
                   "(SELECT archive_message_id FROM pushes)", (TARGET,))
        assert not lite_push.anything_to_push(db, TARGET, folders)
        for state in ("failed", "intent"):
            db.execute("UPDATE pushes SET state = ? WHERE id = 1", (state,))
            assert lite_push.anything_to_push(db, TARGET, folders), state
        db.execute("DELETE FROM pushes WHERE id = 1")
        assert lite_push.anything_to_push(db, TARGET, folders)  # a message never pushed


AUTHORITY = "https://login.example.test/contoso"


def oauth(cache: Path) -> OAuthSettings:
    return OAuthSettings(flow="client_credentials", client_id="app", authority=AUTHORITY,
                         token_cache=cache)


def write_cache(path: Path, now: float, **changes: object) -> None:
    """A token cache in MSAL's unified schema with one app-only access token."""
    entry = {"credential_type": "AccessToken", "secret": "tok-secret-123",
             "home_account_id": None, "environment": "login.example.test",
             "client_id": "app", "target": "https://outlook.office365.com/.default",
             "realm": "contoso", "token_type": "Bearer", "cached_at": str(int(now)),
             "expires_on": str(int(now) + 3600), "extended_expires_on": str(int(now) + 3600)}
    entry.update(changes)
    path.write_text(json.dumps({"AccessToken": {"key": entry}, "Account": {}}))


SCOPES = ["https://outlook.office365.com/.default"]


def test_a_cached_token_is_read_as_msal_would_take_it(tmp_path):
    cache, now = tmp_path / "tokens.json", 1_800_000_000.0
    write_cache(cache, now)
    assert cached_access_token(oauth(cache), SCOPES, now) == "tok-secret-123"
    assert redact.redact("Bearer tok-secret-123") == f"Bearer {redact.MASK}"
    assert cached_access_token(oauth(cache), SCOPES, now + 3600 - 301) == "tok-secret-123"
    assert cached_access_token(oauth(cache), SCOPES, now + 3600 - 299) is None  # MSAL: 5 min


@pytest.mark.parametrize("changes", [
    {"client_id": "other-app"}, {"environment": "login.elsewhere.test"},
    {"realm": "fabrikam"}, {"target": "https://graph.microsoft.com/.default"},
    {"credential_type": "RefreshToken"}, {"expires_on": "soon"},
    {"refresh_on": "1799999999"}, {"secret": ""},
], ids=lambda c: next(iter(c)))
def test_a_token_msal_would_not_use_is_not_read(tmp_path, changes):
    cache, now = tmp_path / "tokens.json", 1_800_000_000.0
    write_cache(cache, now, **changes)
    assert cached_access_token(oauth(cache), SCOPES, now) is None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"AccessToken": []}', '{"Other": {}}'])
def test_a_missing_or_damaged_cache_reads_as_no_token(tmp_path, text):
    cache = tmp_path / "tokens.json"
    if text:
        cache.write_text(text)
    assert cached_access_token(oauth(cache), SCOPES, 1_800_000_000.0) is None


def test_the_probe_works_out_the_archive_side_ahead_and_reuses_it_only_for_the_same_inputs(
        manifest_with_pushes, tmp_path, monkeypatch):
    """quick_gate.ArchiveSide: `foresee` (run while the target is asked) computes the digests
    for the plan the earlier pushes predict; `settled` then finds them kept for the same
    inputs, and asks again for others. Every digest is verify's, from the ORM's rows."""
    url, folders = manifest_with_pushes
    with sqlite3.connect(tmp_path / "manifest.sqlite") as db:  # settle it: nothing to push
        db.execute("UPDATE pushes SET state = 'done' WHERE state IN ('failed', 'intent')")
        db.execute("UPDATE messages SET gone_at = '2026-01-01 00:00:00.000000' WHERE id IN "
                   "(SELECT m.id FROM messages m LEFT JOIN pushes p "
                   "ON p.archive_message_id = m.id WHERE p.id IS NULL)")
    asked: list[str] = []
    real = lite_push.expected_in

    def counted(db, target, folder, planned, pushed_from):  # type: ignore[no-untyped-def]
        asked.append(folder)
        return real(db, target, folder, planned, pushed_from)

    monkeypatch.setattr(lite_push, "expected_in", counted)
    lite = LiteManifest.open(url)
    assert lite is not None
    target = Endpoint(kind="office365", host="127.0.0.1", port=1, username="bob@contoso.test")
    settings = Settings(tmp_path / "migrator.toml", ArchiveSettings(tmp_path, url), {})
    try:
        side = ArchiveSide(Account("bob", target, target), settings, lite.connection, 1, TARGET,
                           lite.folders(1))
        side.foresee(["INBOX", "Work"])
        assert sorted(asked) == ["INBOX", "Work"]
        done = lite_push.done_sources(lite.connection, TARGET, folders)
        inbox = side.digest("INBOX", folders[:1], done["INBOX"])  # the plan the pins predict
        assert sorted(asked) == ["INBOX", "Work"]  # kept from foresee: not asked again
        manifest = open_manifest(url)
        try:
            with manifest.session() as session:
                orm = rows.expected_in(session, TARGET, "INBOX", folders[:1], done["INBOX"])
        finally:
            manifest.close()
        assert inbox == archive_digest(side.names, BlobStore(tmp_path).path, orm)
        other = side.digest("INBOX", folders, done["INBOX"])  # a plan that differs
        assert asked.count("INBOX") == 2 and other != inbox
    finally:
        lite.connection.close()
