"""What every command prints, against real servers.

--json: stdout holds only JSON objects, one per line, and stderr only error lines, for every
command there is. On a terminal the bars leave nothing behind but log lines; off one, a long
run logs a progress line every --progress-interval seconds (a clock the test moves).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from migrator.cli.main import build_parser
from migrator.errors import ExitStatus
from tests.cli_runner import json_lines, run_cli
from tests.integration.push_world import (
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    message,
    source_block,
    target_count,
    write_world_config,
)
from tests.terminal import screen
from tests.world.configs import Batch, Config, Endpoint

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]

# every command as a user would run it with --json, and the exit status it must give
JSON_RUNS: list[tuple[tuple[str, ...], ExitStatus]] = [
    (("config", "check", "{config}"), ExitStatus.OK),
    (("status",), ExitStatus.OK),
    (("pull", "bob", "--dry-run"), ExitStatus.OK),
    (("pull", "bob"), ExitStatus.OK),
    (("push", "bob", "--dry-run"), ExitStatus.OK),
    (("push", "bob"), ExitStatus.OK),
    (("migrate", "bob", "--dry-run"), ExitStatus.OK),
    (("migrate", "bob"), ExitStatus.OK),
    (("verify", "bob"), ExitStatus.OK),
    (("verify", "--archive"), ExitStatus.OK),
    (("repair", "bob"), ExitStatus.OK),
    (("export", "bob", "--format", "mbox", "{dest}"), ExitStatus.OK),
    (("search", "bob", "push", "test", "folder:Reisen"), ExitStatus.OK),
    (("search", "bob", '"unclosed'), ExitStatus.USAGE),
    (("show", "1"), ExitStatus.OK),
    (("index", "bob", "--rebuild"), ExitStatus.OK),
    (("backup", "--all"), ExitStatus.OK),
    (("batch", "run", "{csv}"), ExitStatus.OK),
    (("batch", "status", "{csv}"), ExitStatus.OK),
    (("batch", "submit", "{csv}"), ExitStatus.CONFIG),  # the queue needs a PostgreSQL manifest
    (("worker", "--once"), ExitStatus.CONFIG),  # the same: one line, no JSON to print
    (("auth", "test", "bob", "--target"), ExitStatus.OK),
    (("auth", "login", "bob"), ExitStatus.CONFIG),  # password login: nothing to sign in to
    (("pull", "nobody"), ExitStatus.CONFIG),
    (("pull",), ExitStatus.USAGE),
]


def world(source_server, tmp_path: Path) -> tuple[Path, Path]:
    """bob: alice's mailbox (INBOX, Reisen) -> carol's, both on one Dovecot; and a batch CSV."""
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.add_user("carol", SOURCE_PASSWORD)
    source_server.seed("alice", "INBOX", [message(n) for n in range(6)])
    source_server.seed("alice", "Reisen", [message(n, folder="Reisen") for n in range(6, 9)])
    target = Endpoint("imap", port=source_server.imap_port, security="plain",
                      username="carol", password=f"env:{SOURCE_PASSWORD_ENV}")
    config = write_world_config(tmp_path, source_block(source_server), target)
    batch = Batch(Endpoint("imap", port=source_server.imap_port, security="plain"),
                  report_dir=tmp_path / "reports")
    Config(tmp_path / "archive", batch=batch).write(tmp_path / "base.toml")
    csv_path = tmp_path / "users.csv"
    csv_path.write_text("account,source_kind,source_user,source_secret\n"
                        f"erin,imap,alice,env:{SOURCE_PASSWORD_ENV}\n")
    return config, csv_path


def leaf_commands(parser) -> set[str]:  # type: ignore[no-untyped-def]
    found = set()
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            inner = leaf_commands(sub)
            found |= {f"{name} {n}" for n in inner} if inner else {name}
    return found


def test_json_runs_cover_every_command() -> None:
    covered = {" ".join(args[:2]) if args[0] in {"config", "batch", "auth"} else args[0]
               for args, _ in JSON_RUNS}
    assert covered == leaf_commands(build_parser())


def test_json_is_all_stdout_holds_and_stderr_only_errors(source_server, tmp_path) -> None:
    config, csv_path = world(source_server, tmp_path)
    for args, expected in JSON_RUNS:
        filled = [arg.format(config=config, csv=csv_path, dest=tmp_path / "export")
                  for arg in args]
        base = tmp_path / "base.toml" if args[0] == "batch" else config
        result = run_cli("--json", "-c", base, *filled)
        assert result.status == expected, (args, result.stdout, result.stderr)
        objects = json_lines(result)  # fails on any other line, on either stream
        assert objects or result.stderr, args  # each run says something
        if expected != ExitStatus.OK:
            assert result.stderr.count("\n") == 1 and result.stdout == "", args
    assert target_count(source_server, "carol") == 9


def test_on_a_terminal_bars_leave_only_log_lines(source_server, tmp_path) -> None:
    config, _ = world(source_server, tmp_path)
    result = run_cli("-c", config, "migrate", "bob", tty=True)
    assert result.status == ExitStatus.OK, result.stderr
    assert "pull bob" in result.stderr and "push bob" in result.stderr  # bars were drawn
    lines = screen(result.stderr)
    assert "bob: created target folder Reisen" in lines
    assert not [line for line in lines if "|" in line or "msg/s" in line], lines  # no bar left
    assert "migrate bob: ok: pulled 9, pushed 9" in result.stdout


def test_off_a_terminal_progress_lines_come_at_the_interval(source_server, tmp_path) -> None:
    config, _ = world(source_server, tmp_path)
    ticks = itertools.count(0.0, 100.0)  # every look at the clock is 100 s later
    result = run_cli("-c", config, "--progress-interval", "150", "pull", "bob",
                     clock=lambda: next(ticks))
    assert result.status == ExitStatus.OK, result.stderr
    progress = [line for line in result.stderr.splitlines() if " of 9 messages, " in line]
    assert progress and all(line.startswith("pull bob: ") and line.endswith(" left")
                            for line in progress), result.stderr
