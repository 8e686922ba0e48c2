"""kill -9 at 9 distinct instants of a push to a target that stores a header of its own (issue
13).

Such a target reports an RFC822.SIZE that is not the size of the bytes appended, so every
APPEND whose reply a kill lost must be recognised by Message-ID (or Date/From/Subject) plus the
INTERNALDATE it was appended with, never by size: not sent again, and not lost either. The
target is the plain-IMAP Dovecot behind a FaultProxy that prepends `X-Scanned: clean` to every
APPEND (tests/world/scanner.py). A seeded random generator picks the instants: named ones
(`push-sent:N`, the N-th APPEND written and its reply unread) and kills from outside, once a
random number of APPENDs passed the scanner or after a random delay (which may land in the
start-up, in reconciliation, or in the wait for the server to store what was sent). Of the 20
instants drawn, those that repeat one already tried are left out (`distinct`): every
`push-sent:N` and every half-second window of the 20 is still tried, in half the time.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.engine.push.reconcile import FOUND_NOTE
from migrator.errors import ExitStatus
from migrator.testhook import ENV as KILL_AT
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    Expected,
    expected_at_target,
    fill_archive,
    message,
    placeholder_source,
    push_states,
    write_world_config,
)
from tests.world.configs import Endpoint
from tests.world.mailstore import as_imap_bytes
from tests.world.scanner import AddHeader, unscanned

pytestmark = [pytest.mark.world, pytest.mark.slow, pytest.mark.usefixtures("push_secrets")]
ROOT = Path(__file__).resolve().parents[2]
SEED = 13
KILLS = 20
TIMEOUT = 60
USER = "carol"
FOLDERS = {"INBOX": "INBOX", "Sent": "Sent"}


@dataclass(frozen=True)
class Kill:
    """One instant: "named" kills itself at its `sent`-th APPEND (push-sent); "delay" is
    killed from outside after `delay` seconds, unless it reaches its `sent`-th APPEND first
    (sending is so fast that a run left alone would carry the whole push through)."""

    how: str
    sent: int
    delay: float = 0.0


def schedule(rng: random.Random) -> list[Kill]:
    """The instants, drawn from `rng`; each run takes the push only a few messages further,
    so the kills all fall inside one push of the archive."""
    kills = []
    for _ in range(KILLS):
        if rng.random() < 0.5:
            kills.append(Kill("named", rng.randint(1, 6)))
        else:
            kills.append(Kill("delay", rng.randint(3, 8), rng.uniform(0.1, 3.0)))
    return distinct(kills)


def distinct(kills: list[Kill]) -> list[Kill]:
    """The first of each instant drawn: a named kill at an N already killed at, or a kill
    from outside in a half-second window already tried, reaches no new point (with seed 13:
    named at 1, 2, 5, 6; from outside at 0.35, 1.0, 1.99, 2.26, 2.99 s, 9 of the 20)."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for kill in kills:
        key = (kill.how, kill.sent if kill.how == "named" else int(kill.delay * 2))
        if key not in seen:
            seen.add(key)
            kept.append(kill)
    return kept


def corpus() -> list:
    """150 messages in two folders; every tenth without a Message-ID (found by Date/From/
    Subject), some flagged, sizes varying."""
    inbox = [message(n, size=2500 + 90 * (n % 11), mid="" if n % 10 == 7 else None,
                     flags=("\\Seen", "\\Flagged") if n % 9 == 0 else ("\\Seen",))
             for n in range(100)]
    sent = [message(n, size=1800, folder="Sent", flags=(),
                    mid="" if n % 10 == 3 else None) for n in range(300, 350)]
    return inbox + sent


def start(config: Path, kill_at: str) -> subprocess.Popen:
    """A real `migrator push` that kills itself at `kill_at` (MIGRATOR_TEST_KILL_AT)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), KILL_AT: kill_at}
    return subprocess.Popen([sys.executable, "-m", "migrator", "-q", "-c", str(config),
                             "push", "bob"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_until(kill: Kill, config: Path) -> tuple[str, int, bytes]:
    """Start a push and kill it at `kill`: who ended it ("outside", "itself" or "exit"
    when it ended without a kill), its exit status and its stderr."""
    proc = start(config, f"push-sent:{kill.sent}")
    by = "itself"
    try:
        if kill.how == "delay":
            try:
                proc.wait(timeout=kill.delay)
            except subprocess.TimeoutExpired:
                proc.kill()
                by = "outside"
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
    return (by if proc.returncode == -signal.SIGKILL else "exit"), proc.returncode, err


def appended(stored) -> bytes:
    """A stored message as it was appended: less the scanner's header (a message without
    it did not come through the scanner, a fault of the test world)."""
    original = unscanned(stored.raw)
    assert original is not None, f"UID {stored.uid} lacks the scanner's header"
    return original


def at_target(server) -> dict[str, Counter[Expected]]:
    """{folder: multiset of Expected} of what the target stores, by content as appended."""
    view: dict[str, Counter[Expected]] = {}
    for folder in server.folders(USER):
        stored = server.list_messages(USER, folder)
        if stored:
            view[folder] = Counter(Expected(hashlib.sha256(appended(m)).hexdigest(),
                                            frozenset(m.flags), m.internaldate)
                                   for m in stored)
    return view


def differences(server, messages) -> tuple[int, int]:
    """(duplicates, missing) at the target, by content minus the added header."""
    wanted = expected_at_target(messages, FOLDERS, as_imap_bytes)
    got = at_target(server)
    duplicates = sum(len(list((got.get(f, Counter()) - wanted.get(f, Counter())).elements()))
                     for f in set(got) | set(wanted))
    missing = sum(len(list((wanted[f] - got.get(f, Counter())).elements())) for f in wanted)
    return duplicates, missing


def found_after_a_kill(archive: Path) -> int:
    """Messages whose APPEND outcome a kill left unknown and reconciliation found stored
    (resized) at the target: the case this test is about, so it must have happened."""
    with sqlite3.connect(archive / "manifest.sqlite") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM pushes WHERE state = 'done' AND "
                              "last_error = ?", (FOUND_NOTE,)).fetchone()
    return count


def test_killed_at_every_distinct_instant_pushing_to_a_target_that_adds_a_header(source_server,
                                                                     fault_proxy, tmp_path):
    source_server.add_user(USER, SOURCE_PASSWORD)
    messages = corpus()
    fill_archive(tmp_path / "archive", messages)
    scanner = AddHeader()
    proxy = fault_proxy(source_server.imap_port, rewrite=scanner)
    target = Endpoint("imap", port=proxy.port, security="plain", username=USER,
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20, connections=2)
    config = write_world_config(tmp_path, placeholder_source(), target)

    kills = schedule(random.Random(SEED))
    runs: list[tuple[Kill, str]] = []
    for kill in kills:
        by, status, err = run_until(kill, config)
        runs.append((kill, by))
        assert by != "exit", (kill, status, err.decode())  # no run may end the push alone

    final = run_cli("-c", config, "push", "bob")
    verified = run_cli("-c", config, "verify", "bob")

    assert Counter(by for _, by in runs)["outside"] >= len(kills) // 4, runs
    duplicates, missing = differences(source_server, messages)
    assert (duplicates, missing) == (0, 0), f"{duplicates} duplicate(s), {missing} missing: {runs}"
    assert final.status == ExitStatus.OK, final.stderr
    assert push_states(tmp_path / "archive") == {"done": len(messages)}
    assert found_after_a_kill(tmp_path / "archive") >= len(kills) // 4
    assert verified.status == ExitStatus.OK, verified.stdout + verified.stderr
    assert scanner.added >= len(messages)  # every message went through the scanner
