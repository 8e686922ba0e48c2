"""A full disk under the archive: exit 10 with one line, whatever write meets it first, and a
manifest that opens, checks clean and lets the next run finish the job.

The archive lives on a small tmpfs mounted for the test; a preallocated filler file leaves
exactly as much room as each case wants, so the lock file, the manifest's creation, its WAL,
the blobs or a batch's rows are each the first to find the disk full.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import Result, run_cli
from tests.integration import pop3_world, push_world
from tests.integration.imap_pull_world import PASSWORD_ENV, source_config
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world,
              pytest.mark.skipif(os.geteuid() != 0,
                                 reason="a full disk is a small tmpfs, and mounting needs root")]
MESSAGES = 40
SIZE = 30_000  # 40 x 30 KB: 1.2 MB, more than the largest room any case leaves


@dataclass
class Disk:
    mount: Path

    @property
    def filler(self) -> Path:
        return self.mount / ".filler"

    def leave_free(self, nbytes: int) -> None:
        """Take all the room but `nbytes` (rounded to pages) with a preallocated file."""
        stat = os.statvfs(self.mount)
        take = stat.f_bavail * stat.f_frsize - nbytes
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, take)
        finally:
            os.close(fd)

    def make_room(self) -> None:
        self.filler.unlink()


def mounted(tmp_path: Path, size: str) -> Iterator[Disk]:
    mount = tmp_path / "archive"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True, timeout=60)
    try:
        yield Disk(mount)
    finally:
        if subprocess.run(["umount", str(mount)], timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True, timeout=60)


@pytest.fixture
def disk(tmp_path):
    yield from mounted(tmp_path, "4m")


@pytest.fixture
def roomy_disk(tmp_path):
    """Room for a mailbox of 60 messages of 110 KB."""
    yield from mounted(tmp_path, "12m")


def one_storage_error(result: Result) -> None:
    """Exit 10 and one line: no traceback, no internal error, nothing else said as an error."""
    assert result.status == ExitStatus.STORAGE, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("migrator: ")]
    assert len(errors) == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "Logging error" not in result.stderr


def assert_manifest_intact(archive: Path) -> None:
    """SQLite's own check passes, the schema is all there or not at all, and every recorded
    message's blob is there, whole."""
    db = sqlite3.connect(archive / "manifest.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")}
        if not tables:
            return  # its creation met the full disk and was undone as a whole
        assert {"alembic_version", "blobs", "messages"} <= tables, tables
        for (sha,) in db.execute("SELECT sha256 FROM blobs"):
            data = (archive / "objects" / sha[:2] / f"{sha[2:]}.eml").read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha
    finally:
        db.close()


def archived(archive: Path) -> int:
    db = sqlite3.connect(archive / "manifest.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        db.close()


def body(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: disk {n}\r\nMessage-ID: <{n}@disk.example>\r\n"
            "\r\n").encode() + (b"line %d\r\n" % n) * (SIZE // 10)


# room left: nothing (the lock file), a few pages (the manifest's creation), more (its WAL,
# the first blobs), most of what the mail needs (a batch's blobs or rows, later on)
ROOM = [0, 8 << 10, 96 << 10, 400 << 10, 1 << 20]


@pytest.mark.parametrize("room", ROOM)
def test_imap_pull_onto_a_full_disk(source_server, tmp_path, monkeypatch, disk, room):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    source_server.add_user("alice")
    when = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    source_server.seed("alice", "INBOX", [SeedMessage(body(n), ("\\Seen",), when)
                                          for n in range(MESSAGES)])
    config = source_config(tmp_path, source_server)
    disk.leave_free(room)

    one_storage_error(run_cli("-c", config, "pull", "alice"))

    disk.make_room()  # (SQLite cannot even open a WAL database on a full disk)
    if (disk.mount / "manifest.sqlite").exists():
        assert_manifest_intact(disk.mount)
    resumed = run_cli("-c", config, "pull", "alice")
    assert resumed.status == ExitStatus.OK, resumed.stderr
    assert_manifest_intact(disk.mount)
    assert archived(disk.mount) == MESSAGES


@pytest.mark.parametrize("room", ROOM[1:])
def test_pop3_pull_onto_a_full_disk(source_server, tmp_path, disk, room):
    source_server.add_user(pop3_world.USER, pop3_world.PASSWORD)
    pop3_world.seed(source_server, [body(n) for n in range(MESSAGES)])
    config = pop3_world.pop3_config(tmp_path, source_server)
    disk.leave_free(room)

    one_storage_error(run_cli("-c", config, "pull", pop3_world.USER))

    disk.make_room()  # (SQLite cannot even open a WAL database on a full disk)
    if (disk.mount / "manifest.sqlite").exists():
        assert_manifest_intact(disk.mount)
    resumed = run_cli("-c", config, "pull", pop3_world.USER)
    assert resumed.status == ExitStatus.OK, resumed.stderr
    assert_manifest_intact(disk.mount)
    assert archived(disk.mount) == MESSAGES


def blob_room() -> int:
    """What the blobs of the mail take on the tmpfs (whole pages per file)."""
    return sum(-(-len(body(n)) // 4096) * 4096 for n in range(MESSAGES))


# room left once the manifest exists: the blobs and a little, so that after them the rows,
# the run's record or the WAL are what find the disk full
AFTER_BLOBS = [0, 16 << 10, 48 << 10]


@pytest.mark.parametrize("extra", AFTER_BLOBS)
@pytest.mark.parametrize("kind", ["imap", "pop3"])
def test_a_later_pull_meets_a_full_disk_after_its_blobs(source_server, tmp_path, monkeypatch,
                                                        disk, kind, extra):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    if kind == "imap":
        source_server.add_user("alice")
        config, account = source_config(tmp_path, source_server), "alice"
    else:
        source_server.add_user(pop3_world.USER, pop3_world.PASSWORD)
        config, account = pop3_world.pop3_config(tmp_path, source_server), pop3_world.USER
    assert run_cli("-c", config, "pull", account).status == ExitStatus.OK  # empty mailbox
    when = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    source_server.seed(account, "INBOX", [SeedMessage(body(n), ("\\Seen",), when)
                                          for n in range(MESSAGES)])
    disk.leave_free(blob_room() + extra)

    result = run_cli("-c", config, "pull", account)

    one_storage_error(result)
    disk.make_room()  # (SQLite cannot even open a WAL database on a full disk)
    assert_manifest_intact(disk.mount)
    resumed = run_cli("-c", config, "pull", account)
    assert resumed.status == ExitStatus.OK, resumed.stderr
    assert_manifest_intact(disk.mount)
    assert archived(disk.mount) == MESSAGES


@pytest.mark.usefixtures("push_secrets")
@pytest.mark.parametrize("room", [0, 8 << 10, 32 << 10, 96 << 10])
def test_push_with_a_full_disk_under_the_manifest(o365, oauth_service, certs, tmp_path, disk,
                                                  room):
    messages = [push_world.message(n, size=3000) for n in range(120)]
    push_world.fill_archive(disk.mount, messages)
    config = push_world.write_world_config(tmp_path, push_world.placeholder_source(),
                                           push_world.target_block(o365.imaps_port,
                                                                   certs.ca_cert, oauth_service))
    disk.leave_free(room)

    full = run_cli("-c", config, "push", "bob")
    one_storage_error(full)

    disk.make_room()  # (SQLite cannot even open a WAL database on a full disk)
    assert_manifest_intact(disk.mount)
    resumed = run_cli("-c", config, "push", "bob")
    assert resumed.status == ExitStatus.OK, resumed.stderr
    push_world.assert_target_matches(o365, messages)  # each message once


def pull_connections_ended(server, since: int, count: int = 2) -> list[str]:
    """The source's log lines for the pull's connections ending (Dovecot writes them a
    moment after the client has gone)."""
    import time

    for _ in range(100):
        ends = [line for line in server.log_text()[since:].splitlines()
                if "imap(alice)" in line and "Disconnected" in line]
        if len(ends) >= count:
            return ends
        time.sleep(0.1)
    raise AssertionError(f"the source logged {len(ends)} of {count} connections ending")


def big_body(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: big {n}\r\nMessage-ID: <big{n}@disk.example>\r\n"
            "\r\n").encode() + (b"%09d\r\n" % n) * 10_000  # 110 KB


def test_a_full_disk_stops_a_pull_whose_connections_still_have_big_messages_coming(
        source_server, tmp_path, monkeypatch, roomy_disk):
    """The disk fills while both connections have FETCHes in flight of messages bigger than
    the memory budget (each waits until nothing else is held). The run must end, exit 10,
    and not read what is still coming: it hung (3 runs in 5) when a connection, logging out,
    read the rest through the budget and kept the last message's share, so that the other
    connection's big message waited for a budget that would never be free again."""
    import functools
    import threading

    from migrator.engine.imap import planner
    from migrator.engine.imap.plan import make_batches

    monkeypatch.setenv(PASSWORD_ENV, "secret")
    monkeypatch.setattr("migrator.engine.imap.context.BUDGET_BYTES", 64 << 10)
    monkeypatch.setattr(planner, "make_batches", functools.partial(make_batches, max_messages=10))
    source_server.add_user("alice")
    when = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    source_server.seed("alice", "INBOX", [SeedMessage(big_body(n), ("\\Seen",), when)
                                          for n in range(60)])
    config = source_config(tmp_path, source_server, extra={"connections": 2})
    assert run_cli("-c", config, "pull", "alice", "--dry-run").status == ExitStatus.OK
    roomy_disk.leave_free(600 << 10)  # the manifest, its WAL and a few messages
    logged = len(source_server.log_text())
    results: list[Result] = []
    run = threading.Thread(target=lambda: results.append(run_cli("-c", config, "pull", "alice")),
                           daemon=True)

    run.start()
    run.join(60)

    assert not run.is_alive(), "the pull hung on its full disk"
    one_storage_error(results[0])
    ends = pull_connections_ended(source_server, logged)
    assert any("Logged out" not in end for end in ends), ends  # shut, not read to the end
    roomy_disk.make_room()
    resumed = run_cli("-c", config, "pull", "alice")
    assert resumed.status == ExitStatus.OK, resumed.stderr
    assert_manifest_intact(roomy_disk.mount)
    assert archived(roomy_disk.mount) == 60
