"""What a person sees while a command runs: bars on a terminal, interval lines off one.

The environment is injected: a StringIO posing as a terminal, and a clock the test moves,
so nothing here waits or measures time.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from migrator.cli.environment import Environment
from migrator.cli.main import build_parser, choose_reporter, configure_logging, restore_logging
from migrator.cli.progress import Reporter
from migrator.cli.tracking import Tracker
from migrator.engine.events import Notice, TaskAdvanced, TaskFinished, TaskStarted, TaskTotals
from tests.terminal import screen

log = logging.getLogger("migrator.engine.test")
MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def wired(env: Environment, *options: str) -> Iterator[Reporter]:
    """The reporter and logging `run` would set up for these options (command: status)."""
    args = build_parser().parse_args([*options, "status"])
    reporter = choose_reporter(env, args)
    handlers = configure_logging(env, args, reporter)
    try:
        yield reporter
    finally:
        restore_logging(handlers)


def test_on_a_terminal_log_lines_go_above_the_bars_and_no_bar_is_left() -> None:
    stream = io.StringIO()
    env = Environment(stdout=io.StringIO(), stderr=stream, stderr_isatty=True, clock=Clock())
    with wired(env) as reporter:
        reporter(TaskStarted("pull", "alice"))
        reporter(TaskTotals("pull", "alice", 10, 10 * MB))
        reporter(TaskAdvanced("pull", "alice", 3, int(3.3 * MB)))
        log.info("alice: created target folder Reisen")
        reporter(TaskStarted("push", "alice", 3, 3 * MB))
        reporter(TaskAdvanced("push", "alice", 1, MB))
        reporter(Notice("warning", "the target cannot keep keywords", "alice"))
        log.warning("alice: connection lost; reconnecting")
        reporter(TaskFinished("pull", "alice", {"outcome": "ok"}))
        reporter(TaskAdvanced("push", "alice", 2, 2 * MB))
        reporter.close()  # the push never said it finished: its bar must go too
    assert "pull alice" in stream.getvalue() and "push alice" in stream.getvalue()
    assert screen(stream.getvalue()) == ["alice: created target folder Reisen",
                                         "alice: the target cannot keep keywords",
                                         "alice: connection lost; reconnecting"]


def test_the_push_bar_of_a_migrate_keeps_the_total_of_the_plan() -> None:
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), stderr_isatty=True,
                      clock=Clock())
    with wired(env) as reporter:
        reporter(TaskStarted("pull", "alice"))
        reporter(TaskTotals("pull", "alice", 1000, 1000 * MB))
        reporter(TaskAdvanced("pull", "alice", 30, 30 * MB))
        reporter(TaskStarted("push", "alice", 37, 37 * MB))  # 7 were waiting, 30 pulled
        bars = reporter.bars  # type: ignore[attr-defined]
        totals = [bars["push", "alice"].total]
        for engine_total in (1037, 1521, 3551):  # what the engine re-counts as mail arrives
            reporter(TaskTotals("push", "alice", engine_total, engine_total * MB))
            reporter(TaskAdvanced("push", "alice", 100, 100 * MB))
            totals.append(bars["push", "alice"].total)
        reporter.close()
    assert totals == [1007] * 4


def test_push_total_follows_the_pull_plan_and_never_falls_below_done() -> None:
    tracker = Tracker()
    tracker.update(TaskStarted("pull", "alice"), 0)
    push = tracker.update(TaskStarted("push", "alice", 5, 500), 0)
    assert push is not None and push.total is None  # the pull has not planned yet
    tracker.update(TaskTotals("pull", "alice", 20, 2000), 0)
    assert (push.total, push.total_bytes) == (25, 2500)
    tracker.update(TaskFinished("pull", "alice"), 0)
    tracker.update(TaskAdvanced("push", "alice", 27, 2600), 0)
    assert (push.total, push.total_bytes) == (27, 2600)
    alone = tracker.update(TaskStarted("push", "bob", 4, 400), 0)  # no pull beside it
    tracker.update(TaskTotals("push", "bob", 6, 600), 0)
    assert alone is not None and alone.total == 6


def test_off_a_terminal_a_progress_line_comes_every_interval() -> None:
    clock, stderr = Clock(), io.StringIO()
    env = Environment(stdout=io.StringIO(), stderr=stderr, stderr_isatty=False, clock=clock)
    with wired(env, "--progress-interval", "30") as reporter:
        reporter(TaskStarted("pull", "alice", 100, 10 * MB))
        clock.now += 10
        reporter(TaskAdvanced("pull", "alice", 20, 2 * MB))
        clock.now += 20
        reporter(TaskAdvanced("pull", "alice", 30, 3 * MB))
        clock.now += 5
        reporter(TaskAdvanced("pull", "alice", 10, 1 * MB))
        clock.now += 25
        reporter(TaskAdvanced("pull", "alice", 20, 2 * MB))
        reporter(TaskAdvanced("pull", "alice", 20, 2 * MB))
        reporter(TaskFinished("pull", "alice", {"outcome": "ok", "fetched": 100}))
        clock.now += 600
        reporter(Notice("info", "nothing is running now", "alice"))
    assert stderr.getvalue().splitlines() == [
        "pull alice: started",
        "pull alice: 50 of 100 messages, 5.0 MB of 10.0 MB, 170.7 KB/s, about 30s left",
        "pull alice: 80 of 100 messages, 8.0 MB of 10.0 MB, 136.5 KB/s, about 15s left",
        "pull alice: outcome ok, fetched 100",
        "alice: nothing is running now",
    ]


def test_progress_interval_must_be_positive() -> None:
    from tests.cli_runner import run_cli
    result = run_cli("--progress-interval", "0", "status")
    assert result.status == 2 and "--progress-interval" in result.stderr


def test_push_that_starts_before_its_pull_is_still_linked() -> None:
    tracker = Tracker()
    push = tracker.update(TaskStarted("push", "alice", 4, 400), 0)  # the pull thread is late
    tracker.update(TaskStarted("pull", "alice"), 0)
    tracker.update(TaskTotals("pull", "alice", 10, 1000), 0)
    tracker.update(TaskTotals("push", "alice", 9, 900), 0)  # the engine re-counting
    assert push is not None and (push.total, push.total_bytes) == (14, 1400)


def test_a_bar_left_by_a_failed_job_is_gone_before_the_outcome(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from migrator.cli.commands.accounts import render, run_each
    from migrator.cli.context import Context
    from migrator.errors import AccountError
    from tests.cli_runner import write_config

    config = write_config(tmp_path, f'[archive]\npath = "{tmp_path / "a"}"\n'
                                    '[accounts.alice.source]\nkind = "imap"\nhost = "127.0.0.1"\n'
                                    'username = "alice"\npassword = "env:NOT_USED"\n')
    stream = io.StringIO()
    env = Environment(stdout=stream, stderr=stream, stderr_isatty=True, clock=Clock())
    with wired(env, "-c", str(config)) as reporter:
        ctx = Context(env=env, args=build_parser().parse_args(["-c", str(config), "verify",
                                                               "alice"]), emit=reporter)

        def job(ctx: Context, account):  # type: ignore[no-untyped-def]
            ctx.emit(TaskStarted("verify", account.name, 10))
            raise AccountError(f"{account.name}: the target went away")

        render(ctx, run_each(ctx, "verify", job))
    assert "verify alice" in stream.getvalue()
    assert screen(stream.getvalue()) == ["migrator: error: alice: the target went away",
                                         "verify alice: failed"]
