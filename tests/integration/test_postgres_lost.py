"""A PostgreSQL manifest that is not there: an empty database a read-only command must leave
empty, and a server lost in the middle of a pull (one line, exit 6; the next run resumes)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, inspect

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    assert_archive_matches,
    imap_client,
    source_config,
)
from tests.world.configs import Batch, Config, Endpoint
from tests.world.mailstore import SeedMessage
from tests.world.proxy import FaultProxy, Rewrite


def tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return inspect(connection).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [
    ["status"], ["status", "--json"], ["export", "alice", "--format", "eml", "DEST"],
    ["show", "1"], ["search", "alice", "x"], ["verify", "--archive"]])
def test_a_read_only_command_on_an_empty_database_creates_nothing(postgres_url, tmp_path,
                                                                   command):
    config = Config(tmp_path / "archive", database=postgres_url).write(tmp_path / "m.toml")
    argv = [str(tmp_path / "out") if arg == "DEST" else arg for arg in command]

    result = run_cli("-c", config, *argv)

    assert tables(postgres_url) == []
    if command[0] == "status":  # as on a missing SQLite file: nothing archived yet
        assert result.status == ExitStatus.OK, result.stderr
        if "--json" in command:
            assert json.loads(result.stdout)["accounts"] == []
        else:
            assert "no accounts archived yet" in result.stdout
    elif command[0] == "verify":  # nothing archived: nothing damaged
        assert result.status == ExitStatus.OK, result.stderr
        assert f"nothing archived yet at {tmp_path / 'archive'}" in result.stdout
    else:
        assert result.status == ExitStatus.MANIFEST
        assert result.stderr == f"migrator: error: no archive at {tmp_path / 'archive'}\n"


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_batch_status_before_any_run_shows_every_mailbox_not_started_and_creates_nothing(
        postgres_url, tmp_path, database):
    url = postgres_url if database == "postgresql" else None
    batch = Batch(Endpoint("imap", port=1, security="plain"), report_dir=tmp_path / "reports")
    config = Config(tmp_path / "archive", batch=batch, database=url).write(tmp_path / "m.toml")
    users = tmp_path / "users.csv"
    users.write_text("account,source_user,source_secret\nann,ann,env:X\nben,ben,env:X\n")

    result = run_cli("-c", config, "--json", "batch", "status", users)

    assert result.status == ExitStatus.OK, result.stderr
    assert [(m["account"], m["state"]) for m in json.loads(result.stdout)] == [
        ("ann", "not started"), ("ben", "not started")]
    assert tables(postgres_url) == []
    assert not (tmp_path / "archive" / "manifest.sqlite").exists()


def mail(n: int) -> SeedMessage:
    raw = (f"From: a@example.org\r\nSubject: lost {n}\r\nMessage-ID: <lost.{n}@pg>\r\n"
           f"\r\n{'text ' * 40}{n}\r\n").encode()
    return SeedMessage(raw, (), 1_700_000_000 + n * 60)


class HaltAtFetch(Rewrite):
    """Stops the manifest's server as the pull asks for its first messages."""

    def __init__(self, server, halted: list[bool]) -> None:
        self.database, self.halted = server, halted

    def client(self, unit: bytes) -> bytes:
        if b" UID FETCH " in unit.upper() and b"BODY" in unit.upper() and not self.halted:
            self.halted.append(True)
            self.database.halt()
        return unit


@pytest.mark.world
@pytest.mark.parametrize("manifest_database", ["postgresql"], indirect=True)
def test_a_server_lost_during_a_pull_is_one_line_with_exit_6_and_the_next_run_resumes(
        source_server, postgres_server, manifest_database, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    source_server.add_user("alice")
    source_server.seed("alice", "INBOX", [mail(n) for n in range(30)])
    halted: list[bool] = []
    with FaultProxy(source_server.imap_port,
                    rewrite=lambda: HaltAtFetch(postgres_server, halted)) as proxy:
        config = source_config(tmp_path, source_server, port=proxy.port)
        try:
            lost = run_cli("-c", config, "pull", "alice")
        finally:
            if halted:
                postgres_server.resume()

    assert halted, lost.stderr
    assert lost.status == ExitStatus.CONNECTION, lost.stderr
    errors = [line for line in lost.stderr.splitlines() if line.startswith("migrator: ")]
    assert errors == [lost.stderr.splitlines()[-1]] and "Traceback" not in lost.stderr, \
        lost.stderr
    assert errors[0].startswith("migrator: error: cannot reach the manifest database at "
                                f"127.0.0.1:{postgres_server.port}"), errors

    again = run_cli("-c", source_config(tmp_path, source_server), "pull", "alice")

    assert again.status == ExitStatus.OK, again.stderr
    client = imap_client(source_server, "alice")
    try:
        assert_archive_matches(client, tmp_path / "archive")
    finally:
        client.logout()
