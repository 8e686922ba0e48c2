"""PostgreSQL as the manifest: its schema revisions, the errors a user can meet, and what
SQLite serialises for us but PostgreSQL does not (many writers at once, many mailboxes).

The command-level tests of pull, push, migrate, batch, dry runs, repair, kills and resumes
run on PostgreSQL too: their modules are marked `manifest_databases` (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.exc import IntegrityError

from migrator.archive.blob_rows import insert_blobs
from migrator.archive.blobs import BlobStore
from migrator.archive.db import (
    POOL_OVERFLOW,
    POOL_SIZE,
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    open_manifest,
)
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.archive.manifest import Base, PushRow
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.export_world import PATHS, archived, as_mbox_stores, counter, exported_bytes
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    assert_archive_matches,
    imap_client,
    source_config,
)
from tests.unit.test_manifest import ROWS_AT_0001
from tests.world import manifests
from tests.world.configs import Account, Batch, Config, Endpoint
from tests.world.mailstore import SeedMessage

ROOT = Path(__file__).parents[2]
# archives of the test on PostgreSQL, read back through tests.world.manifests
ON_POSTGRESQL = pytest.mark.parametrize("manifest_database", ["postgresql"], indirect=True)


def mail(n: int, tag: str = "same") -> SeedMessage:
    raw = (f"From: list@example.org\r\nSubject: {tag} {n}\r\nMessage-ID: <{tag}.{n}@pg>\r\n"
           f"\r\n{'body line ' * 30}{n}\r\n").encode()
    return SeedMessage(raw, ("\\Seen",), 1_700_000_000 + n * 60)


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


# -- schema ------------------------------------------------------------------------------------
def _not_fts(name: str | None, type_: str, _parent: object) -> bool:
    """The search index's text table is the revision's alone (no model: raw SQL reads it)."""
    return not (type_ == "table" and name is not None and name.startswith("search_fts"))


def test_an_empty_database_gets_the_whole_schema_matching_the_models(postgres_url):
    manifest = open_manifest(postgres_url)
    try:
        with manifest.engine.connect() as connection:
            assert current_revision(connection) == SCHEMA_HEAD
            context = MigrationContext.configure(connection, opts={"include_name": _not_fts})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        manifest.close()


def test_processes_opening_one_empty_database_at_once_all_get_the_schema(postgres_url):
    """Each opener creates the schema unless another has: without a lock between them, two
    CREATE TABLEs of one name collide in PostgreSQL's catalog and one opener fails."""
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_at_once() -> None:
        start.wait()
        try:
            open_manifest(postgres_url).close()
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=open_at_once, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [thread for thread in threads if thread.is_alive()], "openers still waiting"
    assert errors == []
    assert scalar(postgres_url, "SELECT version_num FROM alembic_version") == SCHEMA_HEAD


def test_a_manifest_at_0001_with_rows_is_upgraded_in_place(postgres_url, caplog):
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        for statement in ROWS_AT_0001:
            connection.execute(text(statement))
        for table in ("accounts", "folders", "messages", "pushes", "source_deletions"):
            connection.execute(text(  # as rows inserted without explicit ids leave them
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"))
    engine.dispose()
    caplog.set_level("INFO", logger="migrator")

    manifest = open_manifest(postgres_url)
    try:
        assert any(f"schema 0001 -> {SCHEMA_HEAD}" in r.message for r in caplog.records)
        with manifest.session() as session:
            pushes = session.scalars(select(PushRow).order_by(PushRow.id)).all()
            assert [(p.archive_message_id, p.state, p.target_uid) for p in pushes] \
                == [(7, "done", 42), (8, "intent", None)]
            assert pushes[0].message.message_id == "<seven@x>"
            session.add(PushRow(archive_message_id=8, target="carol@o365",
                                target_folder="INBOX", state="intent"))
        with pytest.raises(IntegrityError), manifest.engine.begin() as connection:
            connection.execute(text(  # the unique (archive_message_id, target) survived
                "INSERT INTO pushes (archive_message_id, target, target_folder, state, "
                "attempts, updated_at) VALUES (7, 'bob@o365', 'INBOX', 'intent', 0, now())"))
        with manifest.engine.begin() as connection:
            connection.execute(text("DELETE FROM messages WHERE id = 8"))  # cascades
            assert connection.execute(text(
                "SELECT archive_message_id FROM pushes ORDER BY id")).scalars().all() == [7]
        with manifest.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": _not_fts})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        manifest.close()


def test_a_nul_in_a_message_id_is_stored_not_a_failed_batch(postgres_url, tmp_path):
    """SQLite stores U+0000 in text; PostgreSQL refuses it in any text column, which failed
    the whole batch the message came in."""
    manifest = open_manifest(postgres_url)
    try:
        with manifest.session() as session:
            folder = ensure_folder(session, ensure_account(session, "alice", "imap"), "INBOX")
        odd = b"From: a@example.org\r\nMessage-ID: <odd\x00id@example.org>\r\n\r\nbody\r\n"
        plain = b"From: a@example.org\r\nMessage-ID: <plain@example.org>\r\n\r\nbody\r\n"
        added = add_messages(manifest, BlobStore(tmp_path / "archive"), folder.id, [
            FetchedMessage(odd, uid=1, uidvalidity=1), FetchedMessage(plain, uid=2, uidvalidity=1)])
        assert added == 2
        with manifest.engine.connect() as connection:
            assert connection.execute(text("SELECT message_id FROM messages ORDER BY uid")
                                      ).scalars().all() == ["<odd\ufffdid@example.org>",
                                                            "<plain@example.org>"]
    finally:
        manifest.close()


# -- errors a user can meet --------------------------------------------------------------------
def test_an_unreachable_database_is_one_line_naming_the_host_without_the_password(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    password = "pg-Secret-w8Zt1"
    database = f"postgresql+psycopg://migrator:{password}@127.0.0.1:{port}/mail"
    config = Config(tmp_path / "archive", database=database).write(tmp_path / "m.toml")

    result = run_cli("-c", config, "status")

    assert result.status == ExitStatus.CONNECTION
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "database mail" in result.stderr
    assert password not in result.stderr + result.stdout


def test_a_refused_login_is_one_line_with_the_manifest_exit_code(postgres_server, tmp_path):
    url = make_url(postgres_server.url()).set(username="nobody", password="pg-Pw-77kQ")
    config = Config(tmp_path / "archive", database=url.render_as_string(hide_password=False)
                    ).write(tmp_path / "m.toml")

    result = run_cli("-c", config, "status")

    assert result.status == ExitStatus.MANIFEST
    assert result.stderr.count("\n") == 1 and '"nobody"' in result.stderr, result.stderr
    assert "pg-Pw-77kQ" not in result.stderr


# -- many writers ------------------------------------------------------------------------------
def test_many_writers_inserting_overlapping_blob_rows_lose_nothing_and_never_deadlock(
        postgres_url):
    """Eight threads, each transaction inserting a shuffled sample of one pool of blobs,
    all starting together: every insert succeeds, and each blob is one row."""
    manifest = open_manifest(postgres_url)
    shared = [f"{n:064x}" for n in range(400)]
    start = threading.Barrier(8, timeout=60)
    errors: list[BaseException] = []
    inserted: list[int] = []
    offered: set[str] = set()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(6):
                sample = rng.sample(shared, 150)
                offered.update(sample)
                start.wait()
                with manifest.session() as session:
                    inserted.append(insert_blobs(session, {sha: 100 for sha in sample}))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        with manifest.engine.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM blobs")).scalar()
        assert rows == len(offered)  # none lost
        assert sum(inserted) == rows  # each row counted new by exactly one writer
    finally:
        manifest.close()


def two_account_config(tmp_path: Path, server, users: list[str], database: str,
                       parallel: int | None = None) -> Path:
    source = Endpoint("imap", port=server.imap_port, security="plain",
                      password=f"env:{PASSWORD_ENV}", ca_file=server.ca_cert, timeout=20)
    return Config(tmp_path / "archive", {user: Account(source.but(username=user))
                                          for user in users},
                  batch=Batch(source, parallel=parallel), database=database).write(
        tmp_path / "migrator.toml")


@pytest.mark.world
@ON_POSTGRESQL
def test_two_processes_pulling_identical_mailboxes_into_one_database(
        source_server, tmp_path, monkeypatch):
    postgres_url = manifests.url(tmp_path / "archive")
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    messages = [mail(n) for n in range(300)]
    for user in ("ann", "ben"):
        source_server.add_user(user)
        source_server.seed(user, "INBOX", messages)
        source_server.seed(user, "Lists", messages[:100])
    config = two_account_config(tmp_path, source_server, ["ann", "ben"], postgres_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen([sys.executable, "-m", "migrator", "-q", "-c", str(config),
                                   "pull", user], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for user in ("ann", "ben")]
    outputs = [process.communicate(timeout=300) for process in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    assert scalar(postgres_url, "SELECT count(*) FROM blobs") == 300
    assert scalar(postgres_url, "SELECT count(*) FROM messages") == 2 * 400
    assert scalar(postgres_url, "SELECT count(*) FROM runs WHERE outcome = 'ok'") == 2
    for user in ("ann", "ben"):
        client = imap_client(source_server, user)
        try:
            assert_archive_matches(client, tmp_path / "archive", user)
        finally:
            client.logout()


@pytest.mark.world
def test_a_batch_of_many_mailboxes_holds_a_bounded_number_of_connections(
        source_server, postgres_server, postgres_url, tmp_path, monkeypatch):
    """30 mailboxes, 10 at a time: the process never holds more connections than its pool
    allows, and none is left open when the batch ends."""
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    users = [f"m{n:02d}" for n in range(30)]
    for user in users:
        source_server.add_user(user)
        source_server.seed(user, "INBOX", [mail(n, user) for n in range(5)])
    config = two_account_config(tmp_path, source_server, [], postgres_url, parallel=10)
    users_csv = tmp_path / "users.csv"
    users_csv.write_text("account,source_user\n" + "".join(f"{u},{u}\n" for u in users))
    database = make_url(postgres_url).database
    stop = threading.Event()
    peak = [0]

    def watch() -> None:
        with psycopg.connect(host="127.0.0.1", port=postgres_server.port, user="migrator",
                             dbname="postgres", autocommit=True) as conn:
            while not stop.wait(0.02):
                held = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                    "AND application_name = 'migrator'", (database,))
                row = held.fetchone()
                peak[0] = max(peak[0], row[0] if row else 0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_cli("-c", config, "batch", "run", users_csv)
    finally:
        stop.set()
        watcher.join(timeout=30)

    assert result.status == ExitStatus.OK, result.stdout + result.stderr
    assert scalar(postgres_url, "SELECT count(*) FROM messages") == 30 * 5
    assert 1 <= peak[0] <= POOL_SIZE + POOL_OVERFLOW
    assert scalar(postgres_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                  f"datname = '{database}' AND application_name = 'migrator'") == 0


@pytest.mark.world
@ON_POSTGRESQL
@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_export_from_a_postgresql_manifest_is_complete_and_idempotent(
        source_server, corpus, tmp_path, monkeypatch, fmt):
    """Export reads the manifest (its plan, its journal of what was written) on PostgreSQL
    as on SQLite: every archived message in its folder, and a second export adds nothing."""
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    source_server.add_user("alice")
    for folder in sorted({item.folder for item in corpus}):
        source_server.seed("alice", folder, [i for i in corpus if i.folder == folder])
    config = source_config(tmp_path, source_server)
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    dest = tmp_path / "export"

    first = run_cli("-c", config, "--json", "export", "alice", "--format", fmt, str(dest))
    again = run_cli("-c", config, "--json", "export", "alice", "--format", fmt, str(dest))

    assert first.status == ExitStatus.OK, first.stderr
    view = archived(tmp_path / "archive")
    for folder, rows in view.items():
        expected = [as_mbox_stores(r.data) if fmt == "mbox" else r.data for r in rows]
        assert counter(exported_bytes(dest, fmt, PATHS[fmt][folder])) == counter(expected)
    total = sum(len(rows) for rows in view.values())
    assert total == len(corpus) and json.loads(first.stdout.splitlines()[-1])["exported"] == total
    assert again.status == ExitStatus.OK, again.stderr
    repeated = json.loads(again.stdout.splitlines()[-1])
    assert "exported" not in repeated and repeated["already_exported"] == total
