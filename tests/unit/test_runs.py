"""Runs table: a run killed with SIGKILL is marked `died` by the account's next run."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from migrator.archive.db import open_manifest
from migrator.archive.runs import record_run

# A run that never gets to close its row, as with kill -9: the process kills itself inside.
_KILLED_RUN = """
import os, signal, sys
from migrator.archive.db import open_manifest
from migrator.archive.runs import record_run
manifest = open_manifest(sys.argv[1])
with record_run(manifest, "pull", sys.argv[2], "imap"):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_run(url: str, account: str) -> None:
    done = subprocess.run([sys.executable, "-c", _KILLED_RUN, url, account], timeout=60)
    assert done.returncode == -signal.SIGKILL


def outcomes(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT a.name, r.outcome, r.error FROM runs r "
                            "JOIN accounts a ON a.id = r.account_id ORDER BY r.id").fetchall()


def test_a_killed_run_is_marked_died_by_the_next_run_of_its_account(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    url = f"sqlite:///{db}"
    killed_run(url, "alice")
    killed_run(url, "bob")
    assert [outcome for _, outcome, _ in outcomes(db)] == ["running", "running"]
    manifest = open_manifest(url)
    try:
        with record_run(manifest, "pull", "alice", "imap"):
            pass
    finally:
        manifest.close()
    alice_dead, bob_dead, alice_now = outcomes(db)
    assert alice_dead[:2] == ("alice", "died") and "ended without closing" in alice_dead[2]
    assert bob_dead == ("bob", "running", None)  # not this account's run: not ours to judge
    assert alice_now == ("alice", "ok", None)


def test_runs_open_in_this_process_are_not_dead(tmp_path: Path) -> None:
    """`migrate` opens its pull and push runs inside its own: those are alive."""
    db = tmp_path / "m.sqlite"
    manifest = open_manifest(f"sqlite:///{db}")
    try:
        with record_run(manifest, "migrate", "alice", "imap"):
            with record_run(manifest, "pull", "alice", "imap"):
                assert [o for _, o, _ in outcomes(db)] == ["running", "running"]
            with record_run(manifest, "push", "alice", "imap"):
                pass
    finally:
        manifest.close()
    assert [o for _, o, _ in outcomes(db)] == ["ok", "ok", "ok"]
