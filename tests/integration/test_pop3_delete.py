"""POP3 deletion policy: nothing leaves the server unless the config says so and it is safe."""

from __future__ import annotations

import datetime
import json

import pytest

from migrator import config as config_module
from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.engine.events import TaskTotals
from migrator.engine.pop3.pull import pull_pop3
from migrator.errors import ExitStatus
from migrator.targets import target_identity
from tests.cli_runner import json_lines, run_cli
from tests.integration.pop3_world import (
    PASSWORD,
    USER,
    CutBeforeQuit,
    LoseQuitReply,
    archive_rows,
    blob_path,
    deletions,
    manifest,
    message,
    pop3_config,
    seed,
    server_uidls,
)
from tests.integration.push_world import MAILBOX, SECRET, SECRET_ENV, grant_mailbox, target_block
from tests.world import manifests
from tests.world.proxy import FaultProxy

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]


def utc_text(days: int = 0) -> str:
    """A manifest time (naive UTC), `days` from now, as text both databases read."""
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def pull(config, *args):
    return run_cli("-c", config, "pull", USER, *args)


def summary_of(result) -> dict:
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture
def bob(source_server):
    source_server.add_user(USER, PASSWORD)
    return source_server


def test_after_archive_deletes_exactly_what_this_session_archived(bob, tmp_path):
    seed(bob, [message(n) for n in range(12)])
    settings = config_module.load(pop3_config(tmp_path, bob, delete="after-archive", days=0))
    late = []

    def emit(event):  # mail delivered while the session runs: not in its listing
        if isinstance(event, TaskTotals) and not late:
            late.extend(seed(bob, [message(99)]))

    store = BlobStore(settings.archive.path)
    manifest_db = open_manifest(settings.archive.database)
    try:
        result = pull_pop3(settings.account(USER), manifest_db, store, emit)
    finally:
        manifest_db.close()

    assert result.exit_status == ExitStatus.OK, result.failures
    archive = tmp_path / "archive"
    archived = {row["uidl"]: row for row in archive_rows(archive)}
    remaining = server_uidls(bob)
    assert len(archived) == 12 and len(late) == 1
    assert set(remaining).isdisjoint(archived)  # every archived message left the server
    assert len(remaining) == 1  # the late one stays: never archived, never deleted
    done = deletions(archive)
    assert sorted(row["uidl"] for row in done) == sorted(archived)
    for row in done:
        assert row["state"] == "committed" and row["committed_at"] is not None
        assert "after-archive" in row["reason"] and "re-hashed ok" in row["reason"]
        assert row["requested_at"] <= row["committed_at"]
    assert all(row["gone_at"] is not None for row in archived.values())
    assert result.counts["deleted"] == 12

    second = run_cli("-c", settings.file, "--json", "pull", USER)  # the late one, next run
    assert summary_of(second)["fetched"] == 1 and summary_of(second)["deleted"] == 1
    assert server_uidls(bob) == {}
    assert len(archive_rows(archive)) == 13


def test_only_messages_archived_long_enough_are_deleted(bob, tmp_path):
    seed(bob, [message(n) for n in range(6)])
    assert pull(pop3_config(tmp_path, bob)).status == ExitStatus.OK
    archive = tmp_path / "archive"
    old = [row["uidl"] for row in archive_rows(archive)][:3]
    with manifest(archive) as db:
        db.executemany("UPDATE messages SET first_seen = ? WHERE uidl = ?",
                       [(utc_text(days=-10), uidl) for uidl in old])
    config = pop3_config(tmp_path, bob, delete="after-archive", days=5)

    preview = run_cli("-c", config, "--json", "pull", USER, "--dry-run")
    assert summary_of(preview)["would_delete"] == 3
    notices = [n["text"] for n in json_lines(preview) if n.get("event") == "notice"]
    assert sum(any(f"would delete UIDL {uidl}" in text for text in notices) for uidl in old) == 3
    assert len(server_uidls(bob)) == 6 and deletions(archive) == []

    result = run_cli("-c", config, "--json", "pull", USER)

    assert result.status == ExitStatus.OK, result.stderr
    assert summary_of(result)["deleted"] == 3
    assert set(server_uidls(bob)) == {row["uidl"] for row in archive_rows(archive)} - set(old)
    assert sorted(row["uidl"] for row in deletions(archive)) == sorted(old)


def test_after_push_deletes_only_what_the_target_confirmed(bob, tmp_path):
    seed(bob, [message(n) for n in range(5)])
    config = pop3_config(tmp_path, bob, delete="after-push", days=0, target=True)

    first = run_cli("-c", config, "--json", "pull", USER)

    assert first.status == ExitStatus.OK, first.stderr
    assert summary_of(first).get("deleted", 0) == 0  # archived, but not yet at the target
    assert len(server_uidls(bob)) == 5 and deletions(tmp_path / "archive") == []
    rows = archive_rows(tmp_path / "archive")
    target = target_identity(config_module.load(config).account(USER).target)
    with manifest(tmp_path / "archive") as db:  # what the push engine records, simulated
        db.executemany(
            "INSERT INTO pushes (archive_message_id, target, target_folder, state, target_uid, "
            "attempts, updated_at) VALUES (?, ?, 'INBOX', ?, ?, 1, ?)",
            [(rows[0]["id"], target, "done", 41, utc_text()),
             (rows[1]["id"], target, "done", 42, utc_text()),
             (rows[2]["id"], target, "intent", None, utc_text()),  # outcome unknown: no proof
             (rows[3]["id"], "someone@else:993", "done", 7, utc_text())])  # another target

    second = run_cli("-c", config, "--json", "pull", USER)

    assert second.status == ExitStatus.OK, second.stderr
    assert summary_of(second)["deleted"] == 2
    assert set(server_uidls(bob)) == {row["uidl"] for row in rows[2:]}
    done = deletions(tmp_path / "archive")
    assert sorted(row["uidl"] for row in done) == sorted([rows[0]["uidl"], rows[1]["uidl"]])
    assert all("confirmed at target" in row["reason"] and "INBOX UID 4" in row["reason"]
               for row in done)


def test_after_push_end_to_end_with_the_push_engine(bob, office365_server, oauth_service,
                                                   certs, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    grant_mailbox(oauth_service, office365_server)
    seed(bob, [message(n) for n in range(6)])
    config = pop3_config(tmp_path, bob, delete="after-push", days=0, target_block=target_block(
        office365_server.imaps_port, certs.ca_cert, oauth_service))

    first = run_cli("-c", config, "--json", "pull", USER)
    assert first.status == ExitStatus.OK, first.stderr
    assert summary_of(first).get("deleted", 0) == 0 and len(server_uidls(bob)) == 6

    pushed = run_cli("-c", config, "push", USER)
    assert pushed.status == ExitStatus.OK, pushed.stderr

    second = run_cli("-c", config, "--json", "pull", USER)

    assert second.status == ExitStatus.OK, second.stderr
    assert summary_of(second)["deleted"] == 6
    assert server_uidls(bob) == {}
    done = deletions(tmp_path / "archive")
    assert len(done) == 6 and {row["state"] for row in done} == {"committed"}
    assert all(f"confirmed at target office365:{MAILBOX}" in row["reason"] for row in done)


def test_after_push_without_a_target_is_a_config_error_and_deletes_nothing(bob, tmp_path):
    seed(bob, [message(n) for n in range(2)])
    result = pull(pop3_config(tmp_path, bob, delete="after-push"))
    assert result.status == ExitStatus.CONFIG
    assert "source.delete" in result.stderr and "needs a [accounts." in result.stderr
    assert len(server_uidls(bob)) == 2
    assert manifests.contents(tmp_path / "archive") == b""  # no file, no table


@pytest.mark.parametrize("damage", ["corrupted", "missing"])
def test_a_damaged_blob_blocks_the_deletion_of_its_message(bob, tmp_path, damage):
    seed(bob, [message(n) for n in range(4)])
    assert pull(pop3_config(tmp_path, bob)).status == ExitStatus.OK
    archive = tmp_path / "archive"
    victim = archive_rows(archive)[1]
    path = blob_path(archive, victim["sha256"])
    if damage == "corrupted":
        path.write_bytes(path.read_bytes().replace(b"body", b"BODY", 1))
    else:
        path.unlink()

    result = pull(pop3_config(tmp_path, bob, delete="after-archive", days=0))

    assert result.status == ExitStatus.PARTIAL
    assert f"UIDL {victim['uidl']}" in result.stderr and damage in result.stderr
    assert list(server_uidls(bob)) == [victim["uidl"]]
    assert victim["uidl"] not in {row["uidl"] for row in deletions(archive)}


def test_a_session_cut_before_quit_deletes_nothing_and_the_manifest_agrees(bob, tmp_path):
    seed(bob, [message(n) for n in range(6)])
    archive = tmp_path / "archive"
    with FaultProxy(bob.pop3_port, imap=False, rewrite=CutBeforeQuit) as proxy:
        cut = pull(pop3_config(tmp_path, bob, port=proxy.port, delete="after-archive"))
        assert proxy.events_of("cut") == [("c2s", 1)]
    assert cut.status == ExitStatus.PARTIAL
    assert "not confirmed" in cut.stderr
    assert len(server_uidls(bob)) == 6  # the DELEs were sent, but without QUIT nothing goes
    assert len(archive_rows(archive)) == 6
    assert {row["state"] for row in deletions(archive)} == {"pending"}  # never "committed"
    assert all(row["gone_at"] is None for row in archive_rows(archive))

    again = run_cli("-c", pop3_config(tmp_path, bob, delete="after-archive"), "--json",
                    "pull", USER)

    assert again.status == ExitStatus.OK, again.stderr
    assert server_uidls(bob) == {}
    states = [row["state"] for row in deletions(archive)]
    assert sorted(states) == ["abandoned"] * 6 + ["committed"] * 6
    assert all("not deleted" in row["reason"] for row in deletions(archive)
               if row["state"] == "abandoned")


def test_a_lost_quit_reply_is_settled_by_the_next_run(bob, tmp_path):
    seed(bob, [message(n) for n in range(3)])
    archive = tmp_path / "archive"
    with FaultProxy(bob.pop3_port, imap=False, rewrite=LoseQuitReply) as proxy:
        lost = pull(pop3_config(tmp_path, bob, port=proxy.port, delete="after-archive"))
        assert proxy.events_of("cut") == [("s2c", 1)]
    assert lost.status == ExitStatus.PARTIAL
    assert server_uidls(bob) == {}  # the server did commit
    assert {row["state"] for row in deletions(archive)} == {"pending"}  # we cannot know yet

    again = pull(pop3_config(tmp_path, bob, delete="after-archive"))

    assert again.status == ExitStatus.OK, again.stderr
    rows = deletions(archive)
    assert [row["state"] for row in rows] == ["committed"] * 3
    assert all("confirmed gone" in row["reason"] for row in rows)
    assert all(row["gone_at"] is not None for row in archive_rows(archive))
