"""The migrate no-op probe (engine/migrate_probe.py) against a real Dovecot source and the
Office 365 look-alike: a true no-op is settled without SQLAlchemy, without asking the
identity service, with the full path's output and run rows; each kind of change makes it
decline and the full path then does the work.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from migrator import auth
from migrator.engine import migrate_probe
from tests.cli_runner import Result, run_cli
from tests.integration.push_world import (
    SECRET,
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    issued_tokens,
    leaked,
    source_block,
    target_block,
    write_world_config,
)
from tests.integration.test_noop_probe import message, runs

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]
ROOT = Path(__file__).resolve().parents[2]
RUN_AND_LIST = """
import json, sys
from migrator.cli.main import run
status = run(sys.argv[1:])
print(json.dumps({"status": status, "sqlalchemy": "sqlalchemy" in sys.modules,
                  "msal": "msal" in sys.modules, "imapclient": "imapclient" in sys.modules}))
"""
FIELDS = ("account_id", "command", "outcome", "counts", "error")


def timeless(result: Result) -> Result:
    """A --json result without `push_seconds`: how long the full path's push took (0, or 1
    on a slow moment) is not what the probe must match."""
    answer = json.loads(result.stdout)
    answer.pop("push_seconds")
    return Result(result.status, json.dumps(answer), result.stderr)


def untimed(output: str) -> str:
    """A migrate's output without how long its push took ("pushed in 1s", "seconds 1")."""
    return re.sub(r"(pushed in |seconds )\d+", r"\1N", output)


def row_fields(row: Any) -> list[object]:
    """A run row's FIELDS, its counts without the push's seconds (see `timeless`)."""
    counts = json.loads(row.counts)
    counts.pop("seconds", None)  # the push's row
    counts.pop("push_seconds", None)  # the migrate's row
    return [json.dumps(counts, sort_keys=True) if f == "counts" else getattr(row, f)
            for f in FIELDS]


@pytest.fixture
def probe_results(monkeypatch) -> list[object]:
    seen: list[object] = []
    real = migrate_probe.probe_migrate

    def spy(*args: object) -> object:
        seen.append(real(*args))  # type: ignore[arg-type]
        return seen[-1]

    monkeypatch.setattr(migrate_probe, "probe_migrate", spy)
    return seen


def test_a_no_op_migrate_is_settled_by_the_probe_and_any_change_sends_it_to_the_full_path(
        source_server, o365, oauth_service, certs, tmp_path, probe_results, monkeypatch):
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.seed("alice", "INBOX", [message(n) for n in range(3)])
    source_server.create_folder("alice", "Büro")
    source_server.seed("alice", "Büro", [message(n) for n in range(10, 12)])
    config = write_world_config(tmp_path, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    archive = tmp_path / "archive"
    first = run_cli("-c", config, "migrate", "bob")
    assert first.status == 0, first.stderr
    assert probe_results == [None]  # nothing recorded yet: declined

    with monkeypatch.context() as full_path:
        full_path.setattr(migrate_probe, "probe_migrate", lambda *args: None)
        full = run_cli("-c", config, "--json", "migrate", "bob")
    full_rows = runs(archive)[-3:]
    asked = len(oauth_service.requests)
    quick = run_cli("-c", config, "--json", "migrate", "bob")
    assert probe_results[-1] is not None, quick.stderr
    assert timeless(quick) == timeless(full) and full.status == 0
    assert len(oauth_service.requests) == asked  # the cached token served
    quick_rows = runs(archive)[-3:]
    # the full path's pull and push rows come in either order (two threads)
    assert sorted(row_fields(r) for r in quick_rows) == sorted(row_fields(r) for r in full_rows)
    assert quick_rows[0].command == full_rows[0].command == "migrate"
    assert json.loads(quick.stdout)["verify_present"] == 5

    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, "-c", str(config), "-q",
                           "migrate", "bob"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer == {"status": 0, "sqlalchemy": False, "msal": False, "imapclient": False}, \
        done.stderr

    def changed(name: str, said: str, why: str) -> None:
        """After a change: the probe declines for that change (-vv says why: not for an
        earlier one, so the full path settled that) and the full path does the work (its
        summary line says `said`)."""
        probe_results.clear()
        auth._shared.clear()  # each run its own process, as from cron: no token in memory
        log = tmp_path / f"{name}.log"
        result = run_cli("-c", config, "-vv", "--log-file", log, "migrate", "bob")
        assert probe_results == [None], name  # declined: the full path ran
        assert f"migrate no-op probe declined ({why}" in log.read_text(), name
        assert result.status == 0 and said in result.stdout, (name, result.stdout)
        secrets = [SECRET, SOURCE_PASSWORD, *issued_tokens(oauth_service)]
        assert leaked(secrets, log.read_text(), result.stderr) == [], name

    source_server.seed("alice", "Büro", [message(20)])
    changed("new message at the source", "pulled 1,", "Büro changed")

    o365.doveadm("expunge", "-u", "bob@contoso.test", "mailbox", "Büro", "uid", "1")
    changed("a message deleted at the target", "pushed 1,", "target folder Büro changed")

    o365.doveadm("mailbox", "delete", "-u", "bob@contoso.test", "Büro")
    changed("a target folder deleted", "pushed 3,", "a planned target folder")

    with sqlite3.connect(archive / "manifest.sqlite") as db:  # an APPEND that failed
        folder, uid = db.execute("SELECT target_folder, target_uid FROM pushes "
                                 "WHERE state = 'done' ORDER BY id LIMIT 1").fetchone()
        db.execute("UPDATE pushes SET state = 'failed' WHERE target_uid = ? "
                   "AND target_folder = ?", (uid, folder))
    o365.doveadm("expunge", "-u", "bob@contoso.test", "mailbox", folder, "uid", str(uid))
    changed("a push row failed", "pushed 1,", "messages wait to be pushed")

    with sqlite3.connect(archive / "manifest.sqlite") as db:
        db.execute("UPDATE verified_folders SET archive_digest = 'damaged'")
    changed("a damaged verification record", "verified: 6 present",
            "what the archive expects in Büro changed")  # the first folder, sorted

    with sqlite3.connect(archive / "manifest.sqlite") as db:
        db.execute("DELETE FROM verified_folders WHERE folder = 'INBOX'")
    changed("a missing verification record", "verified: 6 present",
            "target folder INBOX is not recorded")

    cache = archive / "tokens" / "app-app.json"
    entries = json.loads(cache.read_text())
    for entry in entries["AccessToken"].values():
        entry["expires_on"] = str(int(entry["expires_on"]) - 3600)
    cache.write_text(json.dumps(entries))
    changed("an expired token in the cache", "verified: 6 present", "no cached access")

    entries = json.loads(cache.read_text())
    for entry in entries["AccessToken"].values():
        entry["secret"] = "not-a-token-" + entry["secret"][:8]
    cache.write_text(json.dumps(entries))
    changed("a wrong token", "verified: 6 present", "target: AuthError")
    auth._shared.clear()
    probe_results.clear()
    assert run_cli("-c", config, "migrate", "bob").status == 0
    assert probe_results[-1] is not None  # the full path left nothing to do, a new token cached


def test_a_plain_imap_target_is_probed_with_its_password(source_server, tmp_path,
                                                         probe_results, monkeypatch):
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.add_user("carol", SOURCE_PASSWORD)
    source_server.seed("alice", "INBOX", [message(n) for n in range(3)])
    target = source_block(source_server, user="carol").but(
        password=f"env:{SOURCE_PASSWORD_ENV}")
    config = write_world_config(tmp_path, source_block(source_server), target)
    assert run_cli("-c", config, "migrate", "bob").status == 0
    with monkeypatch.context() as full_path:
        full_path.setattr(migrate_probe, "probe_migrate", lambda *args: None)
        full = run_cli("-c", config, "migrate", "bob")
    quick = run_cli("-c", config, "migrate", "bob")
    assert probe_results[-1] is not None and full.status == quick.status == 0
    # how long the full path's push took (0 s, or 1 s on a loaded machine) is not what the
    # probe must match (see `timeless`)
    assert untimed(quick.stdout) == untimed(full.stdout)
    # the progress lines of two threads come in any order:
    assert sorted(untimed(quick.stderr).splitlines()) == sorted(untimed(full.stderr).splitlines())
    assert "verified: 3 present" in quick.stdout


def test_new_mail_at_the_source_starts_the_full_path_without_waiting_for_the_target(
        source_server, o365, oauth_service, certs, tmp_path, probe_results, monkeypatch):
    """A delta pass: the probe's source side finds mail to pull and the full path starts at
    once. The target's look is held until the full path's pull has begun: were the probe
    waiting for it, the pull would never begin and the look would give up waiting."""
    from migrator.engine import migrate as migrate_engine

    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.seed("alice", "INBOX", [message(n) for n in range(3)])
    config = write_world_config(tmp_path, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    assert run_cli("-c", config, "migrate", "bob").status == 0
    source_server.seed("alice", "INBOX", [message(30)])
    pulling = threading.Event()
    released: list[bool] = []
    look, pull = migrate_probe.look_at_target, migrate_engine.pull_account

    def held_look(*args: Any) -> Any:
        released.append(pulling.wait(10))
        return look(*args)

    def noted_pull(*args: Any, **kwargs: Any) -> Any:
        pulling.set()
        return pull(*args, **kwargs)

    monkeypatch.setattr(migrate_probe, "look_at_target", held_look)
    monkeypatch.setattr(migrate_engine, "pull_account", noted_pull)
    probe_results.clear()

    result = run_cli("-c", config, "migrate", "bob")

    assert result.status == 0 and "pulled 1, pushed 1" in result.stdout, result.stderr
    assert probe_results == [None]
    for _ in range(100):  # the look goes on in its thread: wait for its verdict (bounded)
        if released:
            break
        time.sleep(0.1)
    assert released == [True]
