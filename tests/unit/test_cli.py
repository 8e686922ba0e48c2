"""The entry point: help, version, exit codes, one-line errors, quiet mode."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from migrator import __version__
from migrator.cli.main import build_parser
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.world.configs import Batch, Config, Endpoint


def test_version() -> None:
    result = run_cli("--version")
    assert result.status == 0 and result.stdout.strip() == f"migrator {__version__}"


def test_python_dash_m_works() -> None:
    proc = subprocess.run([sys.executable, "-m", "migrator", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "usage: migrator" in proc.stdout


def _subcommands(parser) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    found = []
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            found.append((name, sub))
            found.extend((f"{name} {n}", s) for n, s in _subcommands(sub))
    return found


def test_every_command_has_help_text() -> None:
    parser = build_parser()
    commands = _subcommands(parser)
    assert {"config check", "status", "verify"} <= {name for name, _ in commands}
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for choice in action._choices_actions:
            assert choice.help, f"command {choice.dest} has no help"
    for name, _ in commands:
        result = run_cli(*name.split(), "--help")
        assert result.status == 0 and "usage:" in result.stdout, name


def test_usage_error_exit_code() -> None:
    result = run_cli("no-such-command")
    assert result.status == ExitStatus.USAGE and "invalid choice" in result.stderr


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    result = run_cli("-c", tmp_path / "absent.toml", "status")
    assert result.status == ExitStatus.CONFIG
    assert result.stderr.startswith("migrator: error: ") and result.stderr.count("\n") == 1


def test_traceback_only_on_request(tmp_path: Path) -> None:
    result = run_cli("-c", tmp_path / "absent.toml", "status", "--traceback")
    assert "Traceback" in result.stderr


def test_options_after_the_command_are_honoured(tmp_path: Path) -> None:
    config = Config(tmp_path / "a").write(tmp_path / "migrator.toml")
    assert run_cli("status", "-c", config, "-q").stdout == ""
    assert run_cli("-q", "-c", config, "status").stdout == ""


def test_status_on_empty_archive(tmp_path: Path) -> None:
    config = Config(tmp_path / "a").write(tmp_path / "migrator.toml")
    result = run_cli("-c", config, "status")
    assert result.status == 0 and "no accounts archived yet" in result.stdout
    assert not (tmp_path / "a").exists()  # looking does not create an archive


def test_status_shows_accounts_folders_and_runs(tmp_path: Path) -> None:
    from migrator.archive.blobs import BlobStore
    from migrator.archive.db import open_manifest
    from migrator.archive.ingest import (
        FetchedMessage,
        add_messages,
        ensure_account,
        ensure_folder,
    )
    from migrator.archive.runs import record_run

    config = Config(tmp_path / "a").write(tmp_path / "migrator.toml")
    manifest = open_manifest(f"sqlite:///{tmp_path / 'a' / 'manifest.sqlite'}")
    with record_run(manifest, "pull", "alice", "imap") as run:
        with manifest.session() as session:
            folder = ensure_folder(session, ensure_account(session, "alice", "imap"), "Inbox").id
        add_messages(manifest, BlobStore(tmp_path / "a"), folder,
                     [FetchedMessage(b"a\r\n\r\nb", uid=1), FetchedMessage(b"c\r\n\r\nd", uid=2)])
        run.counts["fetched"] = 2
    manifest.close()
    result = run_cli("-c", config, "status", "--folders")
    assert result.status == 0
    assert "alice (imap): 1 folders, 2 messages" in result.stdout
    assert "Inbox: 2 messages" in result.stdout
    assert "pull alice: ok (fetched 2)" in result.stdout


@pytest.mark.parametrize("status", list(ExitStatus))
def test_every_exit_status_is_documented_in_readme(status: ExitStatus) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"| {status.value} |" in readme and status.name in readme


@pytest.fixture
def kolkata_time(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Local time is UTC+05:30 (no summer time) for the test, and restored after it."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield ZoneInfo("Asia/Kolkata")
    monkeypatch.undo()
    time.tzset()


def _archive_with_a_run(tmp_path: Path) -> Path:
    from migrator.archive.db import open_manifest
    from migrator.archive.runs import record_run

    manifest = open_manifest(f"sqlite:///{tmp_path / 'a' / 'manifest.sqlite'}")
    with record_run(manifest, "pull", "alice", "imap") as run:
        run.counts["fetched"] = 0
    manifest.close()
    batch = Batch(source=Endpoint("imap"))
    return Config(tmp_path / "a", batch=batch).write(tmp_path / "migrator.toml")


def test_status_times_carry_their_zone(tmp_path: Path, kolkata_time: ZoneInfo) -> None:
    config = _archive_with_a_run(tmp_path)
    as_json = json.loads(run_cli("-c", config, "--json", "status").stdout)
    started = datetime.fromisoformat(as_json["runs"][0]["started_at"])
    assert started.utcoffset() == timedelta(0)  # ISO 8601, labelled UTC
    assert as_json["runs"][0]["started_at"][10] == "T"
    assert as_json["accounts"][0]["last_run"]["finished_at"].endswith("+00:00")
    local = started.astimezone(kolkata_time)
    text = run_cli("-c", config, "status").stdout
    assert f"#1 {local:%Y-%m-%d %H:%M:%S}+05:30 pull alice: ok" in text


def test_batch_status_times_carry_their_zone(tmp_path: Path, kolkata_time: ZoneInfo) -> None:
    config = _archive_with_a_run(tmp_path)
    users = tmp_path / "users.csv"
    users.write_text("account,source_user,source_secret\nalice,alice,env:UNUSED\n")
    as_json = json.loads(run_cli("-c", config, "--json", "batch", "status", users).stdout)
    started = datetime.fromisoformat(as_json[0]["last_run"])
    assert started.utcoffset() == timedelta(0)
    text = run_cli("-c", config, "batch", "status", users).stdout
    assert f"{started.astimezone(kolkata_time):%Y-%m-%d %H:%M:%S}+05:30" in text


def test_an_internal_database_error_is_one_line_without_its_sql_parameters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLAlchemy puts the statement and every bound parameter in its message: a bug's one
    line must not carry them (message data, addresses) to the terminal or a cron mail."""
    from sqlalchemy.exc import IntegrityError

    from migrator.cli.commands import status

    def broken(ctx: object) -> int:
        raise IntegrityError("INSERT INTO blobs (sha256) VALUES (?)", ("secret-parameter",),
                             Exception("UNIQUE constraint failed: blobs.sha256"))

    monkeypatch.setattr(status, "run", broken)
    config = Config(tmp_path / "a").write(tmp_path / "migrator.toml")
    result = run_cli("-c", config, "status")
    assert result.status == ExitStatus.ERROR
    assert result.stderr == ("migrator: error: internal error: IntegrityError: (builtins."
                             "Exception) UNIQUE constraint failed: blobs.sha256 (run with "
                             "--traceback)\n")
    assert "secret-parameter" in run_cli("-c", config, "--traceback", "status").stderr
