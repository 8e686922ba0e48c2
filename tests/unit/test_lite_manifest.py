"""The no-op probe's manifest access (sqlite3 alone): the run row it writes reads back through
the ORM models and `status` exactly as the full path's row does, and only an SQLite manifest
at SCHEMA_HEAD is opened at all."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from migrator.archive.db import open_manifest
from migrator.archive.ingest import ensure_account, ensure_folder
from migrator.archive.lite import LiteManifest, utcnow
from migrator.archive.manifest import RunRow
from migrator.archive.runs import record_run
from migrator.archive.summary import summarise


def made(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'manifest.sqlite'}"
    manifest = open_manifest(url)
    try:
        with manifest.session() as session:
            account = ensure_account(session, "alice", "imap")
            ensure_folder(session, account, "INBOX", delimiter="/")
    finally:
        manifest.close()
    return url


def test_the_probes_run_row_reads_back_like_the_full_paths(tmp_path):
    url = made(tmp_path)
    counts = Counter({"folders_unchanged": 3})
    manifest = open_manifest(url)
    try:
        with record_run(manifest, "pull", "alice", "imap") as run:
            run.counts.update(counts)
    finally:
        manifest.close()
    lite = LiteManifest.open(url)
    assert lite is not None
    try:
        account_id = lite.account_id("alice")
        assert account_id is not None
        started = utcnow()
        lite.record_run(account_id, "pull", started, counts)
    finally:
        lite.close()

    manifest = open_manifest(url)
    try:
        with manifest.session() as session:
            full, quick = session.query(RunRow).order_by(RunRow.id).all()
            _, runs = summarise(session)
    finally:
        manifest.close()
    fields = ("account_id", "command", "outcome", "counts", "error")
    assert [getattr(quick, f) for f in fields] == [getattr(full, f) for f in fields]
    assert quick.started_at == started and quick.finished_at is not None
    assert quick.started_at <= quick.finished_at
    assert type(quick.started_at) is type(full.started_at)
    newest, older = runs[:2]
    assert (newest.command, newest.outcome, newest.counts) == (
        older.command, older.outcome, older.counts)


def test_it_reads_what_a_pull_recorded(tmp_path):
    url = made(tmp_path)
    lite = LiteManifest.open(url)
    assert lite is not None
    try:
        account_id = lite.account_id("alice")
        assert account_id is not None and lite.account_id("bob") is None
        (inbox,) = lite.folders(account_id).values()
        assert (inbox.name, inbox.raw_name, inbox.delimiter, inbox.gone) == (
            "INBOX", "INBOX", "/", False)
        assert not lite.has_running_runs(account_id) and not lite.has_open_failures(account_id)
    finally:
        lite.close()


def test_only_an_existing_sqlite_manifest_at_the_newest_schema_is_opened(tmp_path):
    url = made(tmp_path)
    assert LiteManifest.open(f"sqlite:///{tmp_path / 'missing.sqlite'}") is None
    assert LiteManifest.open("postgresql://u@127.0.0.1/m") is None
    assert LiteManifest.open(url + "?mode=ro") is None
    with sqlite3.connect(tmp_path / "manifest.sqlite") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0004'")
    assert LiteManifest.open(url) is None
