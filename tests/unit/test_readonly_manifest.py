"""The dry run's manifest: reads what is there, leaves no file behind, upgrades nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text

from migrator.archive.db import open_manifest
from migrator.archive.ingest import ensure_account
from migrator.archive.manifest import AccountRow
from migrator.archive.readonly import open_manifest_readonly
from migrator.errors import ManifestTooNewError


def names(url: str) -> list[str]:
    manifest = open_manifest_readonly(url)
    try:
        with manifest.session() as session:
            return list(session.scalars(select(AccountRow.name)))
    finally:
        manifest.close()


def test_a_missing_manifest_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    assert names(f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}") == []
    assert list(tmp_path.iterdir()) == []


def test_an_existing_manifest_is_read_without_side_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'manifest.sqlite'}"
    manifest = open_manifest(url)
    with manifest.session() as session:
        ensure_account(session, "alice", "imap")
    manifest.close()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert names(url) == ["alice"]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_rows_still_in_another_runs_wal_are_seen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'manifest.sqlite'}"
    manifest = open_manifest(url)
    try:
        with manifest.engine.connect() as busy:  # holds the -wal open, as a running pull does
            with manifest.session() as session:
                ensure_account(session, "bob", "pop3")
            busy.execute(text("select 1"))
            assert (tmp_path / "manifest.sqlite-wal").exists()
            assert names(url) == ["bob"]
    finally:
        manifest.close()


def test_a_manifest_from_a_newer_migrator_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "manifest.sqlite"
    open_manifest(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        conn.execute("update alembic_version set version_num = '9999_future'")
    conn.close()
    with pytest.raises(ManifestTooNewError, match="9999_future"):
        open_manifest_readonly(f"sqlite:///{db}")
