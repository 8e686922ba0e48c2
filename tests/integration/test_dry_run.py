"""`--dry-run` of pull, push and migrate writes nothing at all (issue 11 item 13).

Not the archive directory, not `manifest.sqlite` or its `-wal`/`-shm`, not a lock file, and
not a schema upgrade, not a refreshed token: the archive is compared file by file (size and
mtime) before and after.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    SOURCE_PASSWORD,
    fill_archive,
    message,
    source_block,
    target_block,
    write_world_config,
)
from tests.integration.test_auth import device_config, sign_in
from tests.world import manifests
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets"),
              pytest.mark.manifest_databases]

COMMANDS = (("pull",), ("push",), ("migrate",))


def mail(n: int) -> SeedMessage:
    raw = (f"From: a@example.org\r\nTo: alice@example.org\r\nSubject: dry {n}\r\n"
           f"Message-ID: <dry.{n}@example.org>\r\n\r\nbody {n}\r\n").encode()
    return SeedMessage(raw, (), 1_700_000_000 + n)


def snapshot(root: Path) -> dict[str, tuple[int, int] | bytes]:
    """Every file and directory under the archive `root`: (size, mtime in ns), and on
    PostgreSQL every row of the manifest's database."""
    files: dict[str, tuple[int, int] | bytes] = {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))}
    if manifests.on_postgresql():
        files["(database)"] = manifests.contents(root)
    return files


@pytest.fixture(params=["imap", "pop3"])
def world_config(request, source_server, o365, oauth_service, certs, tmp_path) -> Path:
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.seed("alice", "INBOX", [mail(n) for n in range(3)])
    return write_world_config(tmp_path, source_block(source_server, kind=request.param),
                              target_block(o365.imaps_port, certs.ca_cert, oauth_service))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_dry_run_on_a_fresh_archive_path_creates_nothing(world_config, tmp_path, command):
    result = run_cli("-c", world_config, *command, "bob", "--dry-run")

    assert result.status == ExitStatus.OK, result.stderr
    assert not (tmp_path / "archive").exists()
    assert manifests.contents(tmp_path / "archive") == b""  # no table created either


def test_dry_runs_on_an_existing_archive_change_no_file(world_config, source_server, tmp_path):
    assert run_cli("-c", world_config, "migrate", "bob").status == ExitStatus.OK
    source_server.seed("alice", "INBOX", [mail(10)])
    before = snapshot(tmp_path / "archive")
    assert "locks/bob.lock" in before
    assert "manifest.sqlite" in before or b"pushes: [(" in before["(database)"]

    for command in COMMANDS:
        result = run_cli("-c", world_config, "--json", *command, "bob", "--dry-run")
        assert result.status == ExitStatus.OK, result.stderr
        assert snapshot(tmp_path / "archive") == before, command

    pulled = run_cli("-c", world_config, "--json", "pull", "bob", "--dry-run")
    assert json.loads(pulled.stdout.splitlines()[-1])["would_fetch"] == 1  # it read the manifest


def test_dry_run_does_not_upgrade_a_manifest_that_needs_it(world_config, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    if not manifests.on_postgresql():  # on PostgreSQL: its database, empty
        (archive / "manifest.sqlite").touch()  # a manifest at no schema revision yet
    before = snapshot(archive)

    told = run_cli("-c", world_config, "pull", "bob", "--dry-run")
    result = run_cli("-c", world_config, "--json", "pull", "bob", "--dry-run")

    assert told.status == ExitStatus.OK, told.stderr
    assert "a real run would upgrade it to" in told.stderr
    assert result.status == ExitStatus.OK, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["would_fetch"] == 3
    assert snapshot(archive) == before


def test_a_token_refreshed_by_a_dry_run_is_not_saved(office365_server, oauth_service, certs,
                                                     tmp_path):
    oauth_service.token_lifetime = 120  # MSAL refreshes what expires within five minutes
    config = device_config(tmp_path, office365_server, oauth_service, certs)
    assert sign_in(config, oauth_service).status == ExitStatus.OK
    fill_archive(tmp_path / "archive", [message(n) for n in range(3)])
    before = snapshot(tmp_path / "archive")
    assert "tokens/bob.json" in before

    result = run_cli("-c", config, "push", "bob", "--dry-run")

    assert result.status == ExitStatus.OK, result.stderr
    assert "total: 3 messages to push" in result.stdout
    assert oauth_service.issued["refresh_token"] >= 1  # the dry run did refresh the token
    assert snapshot(tmp_path / "archive") == before
