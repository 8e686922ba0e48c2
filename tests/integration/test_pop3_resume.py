"""kill -9 at any instant of a POP3 pull, then resume: nothing lost, nothing twice.

migrator runs in its own process; the engine's test hook (MIGRATOR_TEST_KILL_AT, inert
otherwise) SIGKILLs it at a named point, so each instant is hit every time, not by luck.
"""

from __future__ import annotations

import signal

import pytest

from tests.integration.pop3_world import (
    PASSWORD,
    USER,
    archive_rows,
    archived_bytes,
    blob_files,
    deletions,
    expected_archive,
    imap_state,
    pop3_config,
    run_process,
    server_uidls,
)
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]
KILLED = -signal.SIGKILL


@pytest.fixture
def bob(source_server, corpus):
    source_server.add_user(USER, PASSWORD)
    source_server.seed(USER, "INBOX", [SeedMessage(item.raw) for item in corpus[:40]])
    return source_server


@pytest.mark.parametrize("kill_at", [
    "retrieved:13",  # mid-batch: some blobs written, maybe half-written, no rows
    "blobs-durable:3",  # batch 3's blobs durable, its rows not yet committed
    "batch-stored:2",  # right after a commit
])
def test_killed_pull_resumes_to_the_exact_archive(bob, tmp_path, kill_at):
    config = pop3_config(tmp_path, bob)
    before = imap_state(bob)

    killed = run_process(config, "pull", USER, kill_at=kill_at, batch=5)

    assert killed.returncode == KILLED, killed.stderr
    archive = tmp_path / "archive"
    assert len(archive_rows(archive)) < 40

    resumed = run_process(config, "pull", USER, batch=5)

    assert resumed.returncode == 0, resumed.stderr
    assert archived_bytes(archive) == expected_archive(bob)  # one row per UIDL, exact bytes
    rows = archive_rows(archive)
    assert len(rows) == 40
    assert len(blob_files(archive)) == len({row["sha256"] for row in rows})
    assert imap_state(bob) == before


def test_killed_after_dele_before_quit_deletes_nothing_and_resume_finishes(bob, tmp_path):
    config = pop3_config(tmp_path, bob, delete="after-archive")

    killed = run_process(config, "pull", USER, kill_at="before-quit")

    assert killed.returncode == KILLED, killed.stderr
    archive = tmp_path / "archive"
    assert len(server_uidls(bob)) == 40  # DELE without QUIT deletes nothing
    assert {row["state"] for row in deletions(archive)} == {"pending"}
    expected = expected_archive(bob)

    resumed = run_process(config, "pull", USER)

    assert resumed.returncode == 0, resumed.stderr
    assert archived_bytes(archive) == expected
    assert server_uidls(bob) == {}
    committed = [row["uidl"] for row in deletions(archive) if row["state"] == "committed"]
    assert sorted(committed) == sorted(expected)  # each message deleted once, on record


def test_killed_after_quit_before_recording_is_settled_on_resume(bob, tmp_path):
    config = pop3_config(tmp_path, bob, delete="after-archive")
    expected = expected_archive(bob)

    killed = run_process(config, "pull", USER, kill_at="after-quit")

    assert killed.returncode == KILLED, killed.stderr
    archive = tmp_path / "archive"
    assert server_uidls(bob) == {}
    assert {row["state"] for row in deletions(archive)} == {"pending"}

    resumed = run_process(config, "pull", USER)

    assert resumed.returncode == 0, resumed.stderr
    assert archived_bytes(archive) == expected
    assert [row["state"] for row in deletions(archive)] == ["committed"] * 40
