"""Manifest database: Alembic upgrade on open, refusal of newer schemas, SQLite settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from migrator.archive.db import open_manifest
from migrator.archive.ingest import ensure_account, ensure_folder
from migrator.archive.manifest import Base
from migrator.archive.runs import record_run
from migrator.errors import ManifestError, ManifestTooNewError
from tests.cli_runner import run_cli
from tests.world.configs import Config

TABLES = {"accounts", "folders", "blobs", "messages", "pushes", "source_deletions",
          "failures", "runs", "alembic_version"}


def test_upgrade_from_empty_file_creates_schema(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "m.sqlite"
    db.touch()
    caplog.set_level("INFO", logger="migrator")
    manifest = open_manifest(f"sqlite:///{db}")
    try:
        assert set(inspect(manifest.engine).get_table_names()) == TABLES
        with manifest.engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() \
                == "0001"
    finally:
        manifest.close()
    assert [r.message for r in caplog.records if "Creating manifest" in r.message]


def test_models_match_the_newest_revision(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        with manifest.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        manifest.close()


def test_reopening_is_silent_and_keeps_data(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    manifest = open_manifest(url)
    with manifest.session() as session:
        ensure_folder(session, ensure_account(session, "alice", "imap"), "INBOX")
    manifest.close()
    caplog.set_level("INFO", logger="migrator")
    manifest = open_manifest(url)
    with manifest.engine.connect() as conn:
        assert conn.execute(text("select count(*) from folders")).scalar() == 1
    manifest.close()
    assert not caplog.records


def test_newer_manifest_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    open_manifest(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        conn.execute("update alembic_version set version_num = '9999_from_the_future'")
    with pytest.raises(ManifestTooNewError, match="newer than this migrator"):
        open_manifest(f"sqlite:///{db}")
    config = Config(tmp_path, database=f"sqlite:///{db}").write(
        tmp_path / "migrator.toml")
    result = run_cli("-c", config, "status")
    assert result.status == 9
    assert "9999_from_the_future" in result.stderr and "Traceback" not in result.stderr
    with sqlite3.connect(db) as conn:  # untouched
        assert conn.execute("select version_num from alembic_version").fetchone()[0] \
            == "9999_from_the_future"


def test_garbage_file_is_an_error_not_a_new_manifest(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ManifestError, match="cannot open manifest"):
        open_manifest(f"sqlite:///{db}")
    assert db.read_bytes().startswith(b"this is not a database")


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        with manifest.engine.connect() as conn:
            assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
            assert conn.execute(text("pragma foreign_keys")).scalar() == 1
    finally:
        manifest.close()


def test_run_record_keeps_outcome_and_counts(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with record_run(manifest, "pull", "alice", "imap") as run:
        run.counts["fetched"] += 3
        run.partial()
    with pytest.raises(RuntimeError), record_run(manifest, "pull", "alice"):
        raise RuntimeError("boom")
    with manifest.engine.connect() as conn:
        rows = conn.execute(text("select outcome, counts, error from runs order by id")).all()
    manifest.close()
    assert rows[0] == ("partial", '{"fetched": 3}', None)
    assert rows[1][0] == "failed" and "boom" in rows[1][2]


def test_schema_head_constant_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from migrator.archive.db import SCHEMA_HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
