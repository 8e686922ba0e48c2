"""kill -9 of a running `migrator pull` (a real subprocess) at chosen instants, then a resumed
run: the archive must hold exactly what the server has, no row twice, nothing missing.

Named instants come from the engine's test hook (MIGRATOR_TEST_KILL_AT, inert otherwise);
one test also kills from outside at an arbitrary moment, once blobs start to appear.
"""

from __future__ import annotations

import datetime
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrator.engine.imap.fetcher import DEPTH
from migrator.engine.imap.plan import MAX_BATCH_BYTES
from migrator.testhook import ENV as KILL_AT
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    assert_archive_matches,
    imap_client,
    manifest,
    row_count,
    source_config,
)
from tests.integration.profiles import on_each_server
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


@pytest.fixture
def mailbox(source_server):
    """~70 messages, 40 KB to 1.5 MB, ~38 MB in two folders: several batches each."""
    source_server.add_user("alice")
    rng = random.Random(7)
    when = datetime.datetime(2022, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    for folder, count in (("INBOX", 45), ("Archive", 25)):
        messages = []
        for i in range(count):
            size = rng.choice((40_000, 200_000, 600_000, 1_500_000))
            body = (b"%s %d " % (folder.encode(), i) + b"z" * 70 + b"\r\n") * (size // 80)
            messages.append(SeedMessage(b"Subject: %d\r\n\r\n" % i + body,
                                        rng.choice(((), ("\\Seen",), ("\\Flagged", "Tag"))),
                                        when))
        source_server.seed("alice", source_server.folder_name(folder), messages)
    return source_server


def start(config: Path, kill_at: str | None = None) -> subprocess.Popen:
    env = {**os.environ, PASSWORD_ENV: "secret", "PYTHONPATH": str(ROOT)}
    env.pop(KILL_AT, None)
    if kill_at:
        env[KILL_AT] = kill_at
    return subprocess.Popen([sys.executable, "-m", "migrator", "-c", str(config), "-q", "pull",
                             "alice"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, err.decode(errors="replace")


def resume_and_check(server, config: Path, archive: Path) -> None:
    status, err = finish(start(config))
    assert status == 0, err
    assert_archive_matches(imap_client(server, "alice"), archive)
    with manifest(archive) as db:  # a kill left no stray state behind
        assert db.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0
        outcomes = [row[0] for row in db.execute("SELECT outcome FROM runs ORDER BY id")]
    assert outcomes == ["died", "ok"]  # the killed run is marked by the next one
    assert row_count(archive, "blobs") == row_count(archive, "messages")


@pytest.mark.parametrize("kill_at", ["planned:1", "fetched:1", "fetched:30", "blobs-durable:1",
                                     "committed:1", "committed:3"])
def test_killed_at_a_named_instant_then_resumed(mailbox, tmp_path, kill_at):
    config = source_config(tmp_path, mailbox)
    archive = tmp_path / "archive"

    status, _ = finish(start(config, kill_at))

    assert status == -signal.SIGKILL  # it really died there
    resume_and_check(mailbox, config, archive)


@on_each_server
def test_killed_from_outside_while_blobs_appear_then_resumed(mailbox, tmp_path):
    config = source_config(tmp_path, mailbox)
    archive = tmp_path / "archive"
    process = start(config)
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        if len(list((archive / "objects").rglob("*.eml"))) >= 12:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(TIMEOUT)
    committed = row_count(archive, "messages")

    resume_and_check(mailbox, config, archive)

    assert committed < 70  # it was killed mid-way, not after the end


def test_what_a_kill_wastes_is_at_most_the_batches_in_flight(mailbox, tmp_path):
    config = source_config(tmp_path, mailbox, extra={"connections": 1})
    archive = tmp_path / "archive"
    status, _ = finish(start(config, "committed:2"))
    assert status == -signal.SIGKILL
    with manifest(archive) as db:
        recorded = {row[0] for row in db.execute("SELECT sha256 FROM blobs")}
    on_disk = {path.parent.name + path.name.split(".")[0]: path.stat().st_size
               for path in (archive / "objects").rglob("*.eml")}
    wasted = sum(size for sha, size in on_disk.items() if sha not in recorded)

    # fetched but not committed: at most the batches in flight on the one connection
    assert wasted <= DEPTH * MAX_BATCH_BYTES
    resume_and_check(mailbox, config, archive)
