"""The no-op probe (engine/imap/noop_probe.py) against a real Dovecot: a true no-op is
settled without SQLAlchemy and with the full path's result and run row; anything changed,
failed or half-done makes it decline, and the full path then does the work.

Which path ran is seen from outside: the CLI runs in a fresh interpreter that reports the
modules it loaded (the full path cannot run without SQLAlchemy).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migrator.archive.db import open_manifest
from migrator.archive.manifest import RunRow
from migrator.config import load
from migrator.engine.imap import noop_probe
from tests.cli_runner import run_cli
from tests.integration.imap_pull_world import imap_client
from tests.world.configs import Account, Config, Endpoint
from tests.world.dovecot import SourceServer
from tests.world.mailstore import SeedMessage

PASSWORD = "probe-Pw-4471"
PASSWORD_ENV = "MIGRATOR_TEST_PROBE_PW"
ROOT = Path(__file__).resolve().parents[2]
USERS = itertools.count(1)

# The CLI in a fresh interpreter, which then says whether SQLAlchemy or imapclient was loaded.
RUN_AND_LIST = """
import json, sys
from migrator.cli.main import run
status = run(sys.argv[1:])
print(json.dumps({"status": status, "sqlalchemy": "sqlalchemy" in sys.modules,
                  "imapclient": "imapclient" in sys.modules}))
"""


@pytest.fixture(scope="module")
def server(certs) -> Iterator[SourceServer]:
    """One Dovecot for the module; each test has a user of its own."""
    with SourceServer(certs) as started:
        yield started


def message(n: int) -> SeedMessage:
    return SeedMessage(f"Subject: {n}\r\nMessage-ID: <p{n}@example.org>\r\n\r\nbody {n}\r\n"
                       .encode(), ("\\Seen",) if n % 2 else (), 1_700_000_000 + n)


def backed_up(server: SourceServer, tmp_path: Path, **endpoint: object) -> tuple[str, Path]:
    """A user with mail in INBOX and Büro (a name sent in modified UTF-7), backed up once:
    (user, config)."""
    user = f"probe{next(USERS)}"
    server.add_user(user, PASSWORD)
    server.seed(user, "INBOX", [message(n) for n in range(3)])
    server.create_folder(user, "Büro")
    server.seed(user, "Büro", [message(n) for n in range(10, 12)])
    fields: dict = {"port": server.imap_port, "security": "plain", **endpoint}
    config = Config(tmp_path / "archive", {user: Account(Endpoint(
        "imap", username=user, password=f"env:{PASSWORD_ENV}", **fields))}).write(
        tmp_path / "migrator.toml")
    assert run_cli("-q", "-c", config, "backup", user).status == 0
    return user, config


@pytest.fixture
def mailbox(server, tmp_path, monkeypatch) -> tuple[str, Path]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return backed_up(server, tmp_path)


def backup_in_subprocess(config: Path, user: str) -> tuple[int, dict, list[str]]:
    """(exit status, the --json summary's account, which of SQLAlchemy and imapclient were
    loaded)."""
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, "-c", str(config), "--json",
                           "backup", user], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    summary, answer = (json.loads(line) for line in done.stdout.splitlines())
    (account,) = summary["accounts"]
    return answer["status"], account, [name for name in ("sqlalchemy", "imapclient")
                                       if answer[name]]


def runs(archive: Path) -> list[RunRow]:
    manifest = open_manifest(f"sqlite:///{archive / 'manifest.sqlite'}")
    try:
        with manifest.session() as session:
            return list(session.query(RunRow).order_by(RunRow.id))
    finally:
        manifest.close()


@pytest.fixture
def probe_results(monkeypatch) -> list[object]:
    """What each in-process call of the probe returned (None: it declined)."""
    seen: list[object] = []
    real = noop_probe.probe_pull

    def spy(*args: object) -> object:
        seen.append(real(*args))  # type: ignore[arg-type]
        return seen[-1]

    monkeypatch.setattr(noop_probe, "probe_pull", spy)
    return seen


def test_a_true_no_op_is_settled_without_sqlalchemy_as_the_full_path_settles_it(
        mailbox, probe_results, monkeypatch):
    user, config = mailbox
    archive = load(config).archive.path
    fields = ("account_id", "command", "outcome", "counts", "error")
    for options in (["--json", "backup"], ["backup"], ["-q", "pull"]):
        argv = ("-c", config, *options, user)
        with monkeypatch.context() as full_path:
            full_path.setattr(noop_probe, "probe_pull", lambda *args: None)
            full = run_cli(*argv)
        quick = run_cli(*argv)
        assert probe_results[-1] is not None  # the probe settled it
        assert quick == full and full.status == 0
        *_, full_row, quick_row = runs(archive)
        assert [getattr(quick_row, f) for f in fields] == [getattr(full_row, f) for f in fields]
        assert quick_row.started_at > full_row.finished_at
    assert '"folders_unchanged": 2' in full_row.counts
    status, account, loaded = backup_in_subprocess(config, user)
    assert (status, loaded, account["folders_unchanged"]) == (0, [], 2)


def _new_message(server: SourceServer, user: str, archive: Path) -> None:
    server.seed(user, "Büro", [message(20)])


def _flag_change(server: SourceServer, user: str, archive: Path) -> None:
    client = imap_client(server, user, PASSWORD)
    client.select_folder("INBOX")
    client.add_flags([1], ["\\Flagged"])
    client.logout()


def _expunge(server: SourceServer, user: str, archive: Path) -> None:
    client = imap_client(server, user, PASSWORD)
    client.select_folder("Büro")
    client.delete_messages([1])
    client.expunge()
    client.logout()


def _uidvalidity_change(server: SourceServer, user: str, archive: Path) -> None:
    server.doveadm("mailbox", "update", "-u", user, "--uid-validity", "77", "Büro")


def _folder_added(server: SourceServer, user: str, archive: Path) -> None:
    server.create_folder(user, "Later")


def _folder_deleted(server: SourceServer, user: str, archive: Path) -> None:
    server.doveadm("mailbox", "delete", "-u", user, "Büro")


def _failed_earlier(server: SourceServer, user: str, archive: Path) -> None:
    with sqlite3.connect(archive / "manifest.sqlite") as db:
        db.execute("INSERT INTO failures (account_id, stage, folder, ref, reason, at) "
                   "SELECT id, 'pull', 'INBOX', 'UID 999', 'test', '2026-01-01 00:00:00.000000' "
                   "FROM accounts")


def _running_run(server: SourceServer, user: str, archive: Path) -> None:
    with sqlite3.connect(archive / "manifest.sqlite") as db:
        db.execute("INSERT INTO runs (account_id, command, started_at, outcome, counts) "
                   "SELECT id, 'pull', '2026-01-01 00:00:00.000000', 'running', '{}' "
                   "FROM accounts")


CHANGES: dict[str, tuple[Callable[[SourceServer, str, Path], None], str]] = {
    "new message": (_new_message, "fetched"),
    "flag change": (_flag_change, "flags_updated"),
    "expunge": (_expunge, "gone"),
    "uidvalidity": (_uidvalidity_change, "folders_synced"),
    "folder added": (_folder_added, "folders_synced"),
    "folder deleted": (_folder_deleted, ""),
    "failed earlier": (_failed_earlier, "folders_synced"),
    "running run": (_running_run, ""),
}


def test_the_probe_declines_whenever_something_changed_and_settles_the_next_no_op(
        mailbox, server, tmp_path, probe_results):
    """One mailbox through every kind of change in turn (lean): each makes the probe decline
    and the full path do the work; once that is done, the probe settles the next run."""
    user, config = mailbox
    for change, (make_change, counted) in CHANGES.items():
        make_change(server, user, tmp_path / "archive")
        probe_results.clear()

        result = run_cli("-c", config, "--json", "backup", user)
        again = run_cli("-c", config, "--json", "backup", user)

        assert result.status == 0 and again.status == 0, (change, result.stderr)
        assert probe_results[0] is None, change  # declined: the full path ran
        assert probe_results[1] is not None, change  # and left nothing for the next run
        (account,) = json.loads(result.stdout.splitlines()[-1])["accounts"]
        assert not counted or account.get(counted), (change, account)
        assert runs(tmp_path / "archive")[-2].outcome == "ok", change


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_over_tls_the_probe_verifies_the_server_as_the_endpoint_says(
        server, certs, tmp_path, monkeypatch, security, probe_results):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    port = server.imaps_port if security == "tls" else server.imap_port
    user, config = backed_up(server, tmp_path, port=port, security=security,
                             ca_file=certs.ca_cert)
    settled = run_cli("-c", config, "--json", "backup", user)
    assert settled.status == 0 and probe_results[-1] is not None

    untrusted = Config(tmp_path / "archive", {user: Account(Endpoint(  # the system's CAs
        "imap", port=port, security=security, username=user,
        password=f"env:{PASSWORD_ENV}"))}).write(tmp_path / "untrusted.toml")
    argv = ("-c", untrusted, "--json", "backup", user)
    with monkeypatch.context() as full_path:
        full_path.setattr(noop_probe, "probe_pull", lambda *args: None)
        full = run_cli(*argv)
    quick = run_cli(*argv)
    assert quick == full and probe_results[-1] is None and full.status != 0
    assert "certificate verification failed" in full.stderr


def test_after_a_failed_run_the_probe_does_not_log_in(mailbox, probe_results, monkeypatch):
    """A refused password costs one login per run (lockout policies count them): once a run
    failed, the probe declines before connecting until a full run has ended ok."""
    user, config = mailbox
    connections: list[object] = []
    real = noop_probe.QuickSource
    monkeypatch.setattr(noop_probe, "QuickSource",
                        lambda endpoint: connections.append(endpoint) or real(endpoint))
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    first = run_cli("-c", config, "backup", user)
    assert first.status != 0 and len(connections) == 1  # the probe's login, refused

    second = run_cli("-c", config, "backup", user)
    assert second.status == first.status and len(connections) == 1
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    fixed = run_cli("-c", config, "backup", user)
    settled = run_cli("-c", config, "backup", user)
    assert fixed.status == settled.status == 0
    assert len(connections) == 2 and probe_results[-2:] == [None, probe_results[-1]]
    assert probe_results[-1] is not None
