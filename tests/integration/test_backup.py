"""`migrator backup` for cron: quiet on success, JSON summary, one run per account at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from migrator.archive.locks import lock_path
from tests.cli_runner import run_cli
from tests.world import manifests
from tests.world.configs import Account, Config, Endpoint
from tests.world.mailstore import SeedMessage

pytestmark = pytest.mark.manifest_databases

PASSWORD = "backup-Pw-88213"
PASSWORD_ENV = "MIGRATOR_TEST_BACKUP_PW"


def messages(count: int, size: int = 2000) -> list[SeedMessage]:
    return [SeedMessage((f"Subject: {n}\r\nMessage-ID: <b{n}@example.org>\r\n\r\n".encode()
                         + b"x" * size + b"\r\n"), (), 1_700_000_000 + n)
            for n in range(count)]


def config_for(tmp_path: Path, port: int, users: list[str]) -> Path:
    accounts = {user: Account(Endpoint("imap", port=port, security="plain", username=user,
                                       password=f"env:{PASSWORD_ENV}")) for user in users}
    return Config(tmp_path / "archive", accounts).write(tmp_path / "migrator.toml")


@pytest.fixture
def users(source_server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    for user, count in (("ann", 5), ("ben", 3)):
        source_server.add_user(user, PASSWORD)
        source_server.seed(user, "INBOX", messages(count))
    return ["ann", "ben"]


def test_quiet_backup_prints_nothing_on_success(tmp_path, source_server, users) -> None:
    config = config_for(tmp_path, source_server.imap_port, users)
    result = run_cli("--quiet", "-c", config, "backup", "--all")
    assert (result.status, result.stdout, result.stderr) == (0, "", "")
    again = run_cli("-q", "-c", config, "backup", "--all")
    assert (again.status, again.stdout, again.stderr) == (0, "", "")


def test_json_summary_is_one_line(tmp_path, source_server, users) -> None:
    config = config_for(tmp_path, source_server.imap_port, users)
    result = run_cli("--json", "-c", config, "backup", "--all")
    assert result.status == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["command"] == "backup" and summary["exit_status"] == 0
    assert {a["account"]: a["fetched"] for a in summary["accounts"]} == {"ann": 5, "ben": 3}
    assert PASSWORD not in result.stdout + result.stderr


def test_failure_is_reported_even_when_quiet(tmp_path, source_server, users,
                                             monkeypatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    config = config_for(tmp_path, source_server.imap_port, users)
    result = run_cli("--quiet", "-c", config, "backup", "--all")
    assert result.status == 5
    assert result.stdout == ""
    assert result.stderr.count("login refused") == 2


def test_locked_account_exits_at_once_without_touching_the_manifest(tmp_path, source_server,
                                                                    users) -> None:
    config = config_for(tmp_path, source_server.imap_port, ["ann"])
    hold = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from migrator.archive.locks import account_lock
        with account_lock(Path({str(tmp_path / 'archive')!r}), "ann"):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run_cli("-c", config, "backup", "ann")
        assert result.status == 8
        assert f"pid {holder.pid}" in result.stderr and result.stderr.count("\n") == 1
        assert manifests.contents(tmp_path / "archive") == b""  # no file, no table
    finally:
        holder.communicate("", timeout=30)


def test_two_concurrent_backups_second_gets_lock_code_first_completes(
        tmp_path, source_server, fault_proxy, monkeypatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    source_server.add_user("cat", PASSWORD)
    source_server.seed("cat", "INBOX", messages(40))
    proxy = fault_proxy(source_server.imap_port, delay=0.15)  # slow WAN: the run takes seconds
    config = config_for(tmp_path, proxy.port, ["cat"])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    first = subprocess.Popen([sys.executable, "-m", "migrator", "-q", "-c", str(config),
                              "backup", "cat"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock = lock_path(tmp_path / "archive", "cat")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and first.poll() is None:
        if lock.exists() and lock.read_text().strip() == str(first.pid):
            break
        time.sleep(0.01)
    second = run_cli("-q", "-c", config, "backup", "cat")
    out, err = first.communicate(timeout=120)
    assert second.status == 8, second.stderr
    assert "another migrator run" in second.stderr
    assert (first.returncode, out, err) == (0, "", "")
    status = run_cli("-c", config, "--json", "status")
    accounts = json.loads(status.stdout)["accounts"]
    assert accounts[0]["messages"] == 40
