"""The batch queue's leases against a real PostgreSQL: claims never overlap, an expired lease
is taken over (a bounded number of times), and a worker that lost its lease cannot record a
result over the new owner's (fencing by the lease token)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from migrator.archive.db import open_manifest
from migrator.archive.work_queue import NewItem, WorkQueue
from migrator.errors import ConfigError
from tests.cli_runner import run_cli
from tests.world.configs import Batch, Config, Endpoint


@pytest.fixture
def queue(postgres_url):
    manifest = open_manifest(postgres_url)
    yield WorkQueue(manifest)
    manifest.close()


def items(count: int) -> list[NewItem]:
    return [NewItem(f"user{n:02d}", n + 1, {"source_user": f"user{n:02d}",
                                            "source_secret": "env:X"}) for n in range(count)]


def expire_all(queue: WorkQueue) -> None:
    with queue.engine.begin() as conn:
        conn.execute(text("UPDATE work_items SET lease_expires_at = "
                          "lease_expires_at - interval '1 hour' WHERE state = 'running'"))


def test_concurrent_claims_never_share_an_item(queue) -> None:
    queue.submit("b", "b.csv", items(40))
    got: list[list[int]] = []

    def claim(worker: str) -> None:
        mine = []
        while leases := queue.claim(worker, 3, 60, 3):
            mine.extend(lease.item_id for lease in leases)
        got.append(mine)

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [item for mine in got for item in mine]
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_out(queue) -> None:
    queue.submit("b", "b.csv", items(1))
    [old] = queue.claim("w1", 5, 60, 3)
    assert queue.claim("w2", 5, 60, 3) == []  # held, not expired
    expire_all(queue)
    [new] = queue.claim("w2", 5, 60, 3)
    assert (new.item_id, new.token, new.attempts) == (old.item_id, old.token + 1, 2)

    assert queue.renew([old], 60) == [old]  # the old owner learns it lost the lease
    assert not queue.finish(old, "failed", {"state": "failed"}, "late")
    assert queue.finish(new, "done", {"state": "complete"}, None)
    [row] = queue.latest_pass("b")
    assert (row["state"], row["worker"], row["error"]) == ("done", "w2", None)
    with queue.engine.connect() as conn:
        claims = conn.execute(text("SELECT worker, ended FROM work_claims ORDER BY id")).all()
    assert [tuple(claim) for claim in claims] == [("w1", "expired"), ("w2", "done")]


def test_a_mailbox_whose_workers_keep_dying_fails_after_max_attempts(queue) -> None:
    queue.submit("b", "b.csv", items(1))
    for attempt in range(2):
        assert [lease.attempts for lease in queue.claim(f"w{attempt}", 1, 60, 2)] \
            == [attempt + 1]
        expire_all(queue)
    assert queue.claim("w9", 1, 60, 2) == []
    [row] = queue.latest_pass("b")
    assert row["state"] == "failed" and "stopped 2 times" in row["error"]
    assert queue.unfinished() == 0


def test_a_released_lease_is_free_soon_and_costs_no_attempt(queue) -> None:
    queue.submit("b", "b.csv", items(1))
    [lease] = queue.claim("w1", 1, 60, 3)
    queue.release(lease, 0.2)
    assert queue.claim("w2", 1, 60, 3) == []  # still ours while the process ends
    time.sleep(0.5)
    [again] = queue.claim("w2", 1, 60, 3)
    assert again.attempts == 1


def test_a_new_pass_skips_mailboxes_still_pending_and_refused_rows_store_no_values(
        queue) -> None:
    first = queue.submit("b", "b.csv", items(2))
    queue.finish(queue.claim("w", 1, 60, 3)[0], "done", {"state": "complete"}, None)
    second = queue.submit("b", "b.csv", [*items(2), NewItem("bad", 9, None, "literal")])
    assert (first.pass_number, second.pass_number) == (1, 2)
    assert second.queued == ["user00"]
    assert second.already_pending == [("user01", "b")]
    assert second.refused == [(9, "bad", "literal")]
    with queue.engine.connect() as conn:
        assert conn.execute(text("SELECT record FROM work_items WHERE account = 'bad'")
                            ).scalar() is None


def test_submit_on_a_sqlite_manifest_is_one_line_and_a_config_error(tmp_path: Path) -> None:
    base = Config(tmp_path / "archive", batch=Batch(Endpoint("imap", port=143))).write(
        tmp_path / "base.toml")
    users = tmp_path / "users.csv"
    users.write_text("account,source_user,source_secret\nalice,alice,env:ALICE_PW\n")
    for command in (["batch", "submit", str(users)], ["worker", "--once"]):
        result = run_cli("-c", base, *command)
        assert result.status == 3, result.stderr
        assert result.stderr.count("\n") == 1 and "needs a PostgreSQL manifest" in result.stderr


def test_the_queue_refuses_sqlite(tmp_path: Path) -> None:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        with pytest.raises(ConfigError, match="needs a PostgreSQL manifest"):
            WorkQueue(manifest, "batch submit")
    finally:
        manifest.close()
