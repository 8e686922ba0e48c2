"""Manifest database: Alembic upgrade on open, refusal of newer schemas, SQLite settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from migrator.archive.db import SCHEMA_HEAD, alembic_config, make_engine, open_manifest
from migrator.archive.ingest import ensure_account, ensure_folder
from migrator.archive.manifest import Base, PushRow, SourceDeletionRow
from migrator.archive.runs import record_run
from migrator.errors import ManifestError, ManifestTooNewError
from tests.cli_runner import run_cli
from tests.world.configs import Config

TABLES = {"accounts", "folders", "blobs", "messages", "pushes", "source_deletions",
          "failures", "runs", "search_docs", "verified_folders",
          "work_items", "work_claims",
          "alembic_version"}


def _without_fts(names: list[str]) -> set[str]:
    """Table names but the search index's FTS5 table and its shadow tables (SQLite's own)."""
    return {name for name in names if not name.startswith("search_fts")}


def _not_fts(name: str | None, type_: str, _parent: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("search_fts"))


def test_upgrade_from_empty_file_creates_schema(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "m.sqlite"
    db.touch()
    caplog.set_level("INFO", logger="migrator")
    manifest = open_manifest(f"sqlite:///{db}")
    try:
        assert _without_fts(inspect(manifest.engine).get_table_names()) == TABLES
        with manifest.engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() \
                == SCHEMA_HEAD
    finally:
        manifest.close()
    assert [r.message for r in caplog.records if "Creating manifest" in r.message]


def test_models_match_the_newest_revision(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        with manifest.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"include_name": _not_fts}), Base.metadata)
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


# Rows as revision 0001 stored them: the push and deletion columns `message_id` held
# messages.id (the same name as the Message-ID header column of `messages`).
ROWS_AT_0001 = [
    "INSERT INTO accounts (id, name, source_kind, created_at) "
    "VALUES (1, 'alice', 'pop3', '2026-11-01 10:00:00')",
    "INSERT INTO folders (id, account_id, name, raw_name) VALUES (1, 1, 'INBOX', 'INBOX')",
    "INSERT INTO blobs (sha256, size, stored_at) VALUES ('" + "a" * 64 + "', 10, "
    "'2026-11-01 10:00:00'), ('" + "b" * 64 + "', 20, '2026-11-01 10:00:00')",
    "INSERT INTO messages (id, folder_id, uidl, sha256, size, flags, message_id, first_seen) "
    "VALUES (7, 1, 'u7', '" + "a" * 64 + "', 10, '', '<seven@x>', '2026-11-01 10:00:00'), "
    "(8, 1, 'u8', '" + "b" * 64 + "', 20, '', NULL, '2026-11-01 10:00:00')",
    "INSERT INTO pushes (id, message_id, target, target_folder, state, target_uidvalidity, "
    "target_uid, attempts, updated_at) VALUES (1, 7, 'bob@o365', 'INBOX', 'done', 5, 42, 1, "
    "'2026-11-02 10:00:00'), (2, 8, 'bob@o365', 'INBOX', 'intent', NULL, NULL, 0, "
    "'2026-11-02 10:00:00')",
    "INSERT INTO source_deletions (id, message_id, state, reason, requested_at, committed_at) "
    "VALUES (1, 7, 'committed', 'pushed to bob@o365', '2026-11-03 10:00:00', "
    "'2026-11-03 10:01:00')",
]


def _manifest_at_0001(url: str, *extra: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        for statement in [*ROWS_AT_0001, *extra]:
            conn.execute(text(statement))
    engine.dispose()


def test_upgrade_from_0001_keeps_pushes_and_deletions_under_archive_message_id(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    _manifest_at_0001(url)
    caplog.set_level("INFO", logger="migrator")
    manifest = open_manifest(url)
    try:
        assert any("schema 0001 -> " + SCHEMA_HEAD in r.message for r in caplog.records)
        with manifest.session() as session:
            pushes = session.scalars(select(PushRow).order_by(PushRow.id)).all()
            assert [(p.archive_message_id, p.state, p.target_uid) for p in pushes] \
                == [(7, "done", 42), (8, "intent", None)]
            assert pushes[0].message.message_id == "<seven@x>"  # the header kept its name
            deletion = session.scalars(select(SourceDeletionRow)).one()
            assert (deletion.archive_message_id, deletion.state) == (7, "committed")
        _constraints_survived(manifest.engine)
    finally:
        manifest.close()


def _constraints_survived(engine: Engine) -> None:
    """The unique (archive_message_id, target) pair and the cascading foreign keys."""
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO pushes (archive_message_id, target, target_folder, "
                          "state, attempts, updated_at) VALUES (7, 'bob@o365', 'INBOX', "
                          "'intent', 0, '2026-11-04 10:00:00')"))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM messages WHERE id = 7"))
        assert conn.execute(text("SELECT archive_message_id FROM pushes")).scalars().all() \
            == [8]
        assert conn.execute(text("SELECT count(*) FROM source_deletions")).scalar() == 0


def test_upgrade_killed_before_its_copy_began_runs_again(tmp_path: Path) -> None:
    """What a kill -9 right after batch mode's (autocommitted) CREATE TABLE leaves behind:
    revision 0001, the rows in place, and an empty `_alembic_tmp_pushes`."""
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    _manifest_at_0001(url, "CREATE TABLE _alembic_tmp_pushes (id INTEGER NOT NULL, "
                           "archive_message_id INTEGER NOT NULL, PRIMARY KEY (id))")
    manifest = open_manifest(url)
    try:
        with manifest.engine.connect() as conn:
            assert conn.execute(text("SELECT archive_message_id FROM pushes ORDER BY id")) \
                .scalars().all() == [7, 8]
            assert not inspect(conn).has_table("_alembic_tmp_pushes")
    finally:
        manifest.close()
