"""Shared options: declared once, combinations checked in one place, usage errors exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.cli.main import build_parser
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli, write_config

ACCOUNT_COMMANDS = ["pull", "push", "migrate", "backup", "verify"]


def assert_one_usage_line(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.status == ExitStatus.USAGE, result.stderr
    assert result.stderr.startswith("migrator: error: ") and result.stderr.count("\n") == 1
    assert result.stdout == "" and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


@pytest.mark.parametrize("command", ACCOUNT_COMMANDS)
def test_account_commands_share_account_and_all(command: str) -> None:
    args = build_parser().parse_args([command, "--all"])
    assert args.all is True and args.accounts == [] and args.dry_run is False


@pytest.mark.parametrize("command", ACCOUNT_COMMANDS)
def test_no_account_is_a_usage_error(command: str) -> None:
    assert_one_usage_line(run_cli(command), "ACCOUNT", "--all")


@pytest.mark.parametrize("command", ACCOUNT_COMMANDS)
def test_account_and_all_together_is_a_usage_error(command: str) -> None:
    assert_one_usage_line(run_cli(command, "alice", "--all"), "not both")


def test_verify_bytes_needs_an_account() -> None:
    assert_one_usage_line(run_cli("verify", "--archive", "--bytes"), "--bytes")


@pytest.mark.parametrize("value", ["0", "-3", "four"])
def test_bad_parallel_is_a_usage_error(tmp_path: Path, value: str) -> None:
    result = run_cli("batch", "run", tmp_path / "users.csv", "--parallel", value)
    assert_one_usage_line(result, "--parallel", repr(value))


def test_unknown_option_and_command_are_one_line() -> None:
    assert_one_usage_line(run_cli("pull", "--no-such-option"), "--no-such-option")
    assert_one_usage_line(run_cli("no-such-command"), "invalid choice")
    assert_one_usage_line(run_cli(), "COMMAND")


def test_unwritable_log_file_is_one_line_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[archive]\npath = "{tmp_path / "a"}"\n')
    log_file = tmp_path / "no-such-dir" / "run.log"
    result = run_cli("-c", config, "--log-file", log_file, "status")
    assert result.status == ExitStatus.CONFIG, result.stderr
    assert result.stderr == (f"migrator: error: cannot write the log file {log_file}: "
                             "No such file or directory\n")
    assert run_cli("-c", config, "--log-file", tmp_path, "status").status == ExitStatus.CONFIG
