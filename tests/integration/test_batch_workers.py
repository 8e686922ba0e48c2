"""Distributed batches (issue 16): `batch submit` queues the mailboxes in the PostgreSQL
manifest, `migrator worker` processes claim and run them, a killed worker's mailboxes are
taken over once its leases expire, and no mailbox is ever worked on by two workers at once
(checked from the recorded claims, not from timing)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.cli_runner import run_cli
from tests.integration.push_world import SECRET, leaked
from tests.integration.test_batch import (
    PASSWORD,
    WRONG_ENV,
    at_target,
    mail,
    make_batch,
    world,  # noqa: F401  (a fixture)
)
from tests.world.proxy import FaultProxy

ROOT = Path(__file__).parents[2]
LEASE = "30"  # seconds: ample on a loaded machine
SHORT_LEASE = "5"  # seconds: a killed worker's mailboxes are taken over quickly
WAIT = 240  # seconds any worker process may take at most


class Workers:
    """`python -m migrator worker` processes, every one stopped at the end of the test."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None,
              lease: str = LEASE) -> subprocess.Popen[bytes]:
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        proc = subprocess.Popen([sys.executable, "-m", "migrator", "-c", str(self.base),
                                 "worker", "--lease", lease, "--poll", "0.5", *args],
                                env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen[bytes]) -> tuple[int, str]:
        out, err = proc.communicate(timeout=WAIT)
        return proc.returncode, out.decode() + err.decode()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


@pytest.fixture
def workers_for(tmp_path) -> Iterator:
    started: list[Workers] = []

    def make(base: Path) -> Workers:
        started.append(Workers(base))
        return started[-1]

    yield make
    for workers in started:
        workers.stop_all()


def on_postgres(base: Path, url: str) -> None:
    """The batch world's base config, its manifest moved to PostgreSQL."""
    text_ = base.read_text()
    base.write_text(text_.replace("[archive]\n", f'[archive]\ndatabase = "{url}"\n', 1))


def queue_status(base: Path, csv_path: Path) -> dict[str, dict]:
    result = run_cli("-c", base, "--json", "batch", "status", csv_path)
    assert result.status == 0, result.stderr
    return {row["account"]: row for row in json.loads(result.stdout)}


def claims(url: str) -> dict[str, list[tuple]]:
    """Every claim per mailbox: (worker, claimed_at, ended_at, how it ended, pass)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT i.account, c.worker, c.claimed_at, c.ended_at, c.ended, i.pass_number "
                "FROM work_claims c JOIN work_items i ON i.id = c.work_item_id "
                "ORDER BY c.claimed_at")).all()
    finally:
        engine.dispose()
    found: dict[str, list[tuple]] = defaultdict(list)
    for account, *claim in rows:
        found[account].append(tuple(claim))
    return found


def assert_never_two_at_once(history: dict[str, list[tuple]]) -> None:
    """Each claim of a mailbox ended (its lease ran out, or its result was recorded) before
    the next one began."""
    for account, claimed in history.items():
        for earlier, later in itertools.pairwise(claimed):
            assert earlier[2] is not None and earlier[2] <= later[1], (account, claimed)


@pytest.mark.slow
def test_twenty_mailboxes_across_three_workers_then_a_delta_pass(
        world, tmp_path, postgres_url, workers_for) -> None:  # noqa: F811
    _, source, office365, _ = world
    base, users_csv, expected = make_batch(world, 20, wrong="user07", closed="user11")
    on_postgres(base, postgres_url)

    submitted = run_cli("-c", base, "batch", "submit", users_csv)
    assert submitted.status == 0, submitted.stdout + submitted.stderr
    assert "pass 1: 20 queued" in submitted.stdout
    workers = workers_for(base)
    procs = [workers.start("--parallel", "3", "--until-empty") for _ in range(3)]
    ended = [workers.wait(proc) for proc in procs]
    assert {status for status, _ in ended} <= {0, 4}, ended

    rows = queue_status(base, users_csv)
    failed = sorted(name for name, row in rows.items() if row["state"] != "done")
    assert failed == ["user07", "user11"], rows
    assert "login refused" in rows["user07"]["error"]
    assert "cannot connect" in rows["user11"]["error"]
    for user, count in expected.items():
        if user in ("user07", "user11"):
            assert not at_target(office365, user)
            continue
        assert rows[user]["verified"] is True, rows[user]
        got = at_target(office365, user)
        assert sum(got.values()) == count and max(got.values()) == 1, user
    history = claims(postgres_url)
    assert all(len(claimed) == 1 for claimed in history.values()), history  # none twice
    assert len({claim[0] for claimed in history.values() for claim in claimed}) >= 2

    # the delta pass: the password fixed, new mail in an IMAP and a POP3 mailbox
    os.environ[WRONG_ENV] = PASSWORD
    source.seed("user01", "INBOX", [mail("user01", 50)])
    source.seed("user04", "INBOX", [mail("user04", 50)])
    again = run_cli("-c", base, "batch", "submit", users_csv)
    assert "pass 2: 20 queued" in again.stdout, again.stdout + again.stderr
    procs = [workers.start("--parallel", "4", "--until-empty") for _ in range(2)]
    ended = [workers.wait(proc) for proc in procs]
    assert {status for status, _ in ended} <= {0, 4}, ended
    rows = queue_status(base, users_csv)
    assert {row["pass"] for row in rows.values()} == {2}
    assert [name for name, row in rows.items() if row["state"] != "done"] == ["user11"]
    assert rows["user07"]["this_pass"]["pushed"] == expected["user07"]
    for user in ("user01", "user04"):
        assert rows[user]["this_pass"]["archived"] == 1, rows[user]
        assert rows[user]["this_pass"]["pushed"] == 1, rows[user]
    for user in ("user02", "user03", "user05", "user20"):
        assert rows[user]["this_pass"]["archived"] == 0 == rows[user]["this_pass"]["pushed"]
    for user, count in expected.items():
        if user != "user11":
            got = at_target(office365, user)
            extra = 1 if user in ("user01", "user04") else 0
            assert sum(got.values()) == count + extra and max(got.values()) == 1, user
    assert_never_two_at_once(claims(postgres_url))
    texts = [submitted.stdout, again.stdout, *(output for _, output in ended),
             json.dumps(rows)]
    assert leaked([PASSWORD, SECRET], *texts) == []


@pytest.mark.slow
def test_a_worker_killed_mid_push_leaves_its_mailboxes_to_the_others(
        world, tmp_path, postgres_url, workers_for) -> None:  # noqa: F811
    _, _, office365, _ = world
    base, users_csv, expected = make_batch(world, 8)
    on_postgres(base, postgres_url)
    assert run_cli("-c", base, "batch", "submit", users_csv).status == 0
    workers = workers_for(base)
    doomed = workers.start("--parallel", "2", "--until-empty", lease=SHORT_LEASE,
                           env={"MIGRATOR_TEST_KILL_AT": "push-sent:3"})
    name = f":{doomed.pid}"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and doomed.poll() is None:
        live = queue_status(base, users_csv)
        mine = [row for row in live.values() if (row["worker"] or "").endswith(name)
                and row["state"] == "running"]
        if mine:
            assert mine[0]["heartbeat_age"] is not None  # status shows the lease live
            break
        time.sleep(0.2)
    others = [workers.start("--parallel", "2", "--until-empty", lease=SHORT_LEASE)
              for _ in range(2)]
    status, output = workers.wait(doomed)
    assert status == -signal.SIGKILL, output
    ended = [workers.wait(proc) for proc in others]
    assert [status for status, _ in ended] == [0, 0], ended

    rows = queue_status(base, users_csv)
    assert all(row["state"] == "done" and row["verified"] is True for row in rows.values()), \
        rows
    for user, count in expected.items():
        got = at_target(office365, user)
        assert sum(got.values()) == count and max(got.values()) == 1, user
    history = claims(postgres_url)
    taken_over = [account for account, claimed in history.items()
                  if claimed[0][0].endswith(name) and claimed[0][3] == "expired"]
    assert taken_over, history
    for account in taken_over:
        assert not history[account][-1][0].endswith(name)
        assert history[account][-1][3] == "done"
    assert_never_two_at_once(history)


def test_a_stopped_worker_hands_its_mailboxes_back(
        world, tmp_path, postgres_url, workers_for) -> None:  # noqa: F811
    _, source, _, _ = world
    base, users_csv, _ = make_batch(world, 3)  # three IMAP mailboxes
    on_postgres(base, postgres_url)
    with FaultProxy(source.imap_port, delay=0.4) as slow:  # so they are still running
        users_csv.write_text(users_csv.read_text().replace(f",{source.imap_port},",
                                                           f",{slow.port},"))
        assert run_cli("-c", base, "batch", "submit", users_csv).status == 0
        workers = workers_for(base)
        stopping = workers.start("--parallel", "3", "--grace", "0")
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and stopping.poll() is None:
            live = queue_status(base, users_csv).values()
            if sum(row["state"] == "running" for row in live) == 3:
                break
            time.sleep(0.2)
        shown = run_cli("-c", base, "batch", "status", users_csv).stdout
        assert shown.count(f":{stopping.pid}") == 3 and "3 running" in shown, shown
        stopping.send_signal(signal.SIGTERM)
        status, output = workers.wait(stopping)
        assert status == 130 and "handed back user01, user02, user03" in output, output
        status, output = workers.wait(workers.start("--until-empty"))
        assert status == 0, output
    rows = queue_status(base, users_csv)
    assert all(row["state"] == "done" and row["attempts"] == 1 for row in rows.values()), rows
    history = claims(postgres_url)
    assert all([claim[3] for claim in claimed] == ["released", "done"]
               for claimed in history.values()), history
    assert_never_two_at_once(history)
