"""Command line: parse, build a Context, call the command, render; one error boundary.

Commands live in `migrator.cli.commands`, one module each with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any, TextIO

from migrator import __version__
from migrator.cli.commands import COMMANDS, modules
from migrator.cli.context import Context
from migrator.cli.environment import Environment
from migrator.cli.options import Parser, check, positive_seconds
from migrator.cli.progress import JsonReporter, LineReporter, NullReporter, Reporter
from migrator.diskfull import disk_full, is_disk_full
from migrator.errors import (
    ConfigError,
    ExitStatus,
    MigratorError,
    UsageError,
    unexpected_error_text,
)
from migrator.redact import RedactingFilter, redact

log = logging.getLogger("migrator")


def common_options(top_level: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command name.

    After the command they default to SUPPRESS, so `migrator -q status` is not undone by the
    subcommand's own default (an argparse pitfall with shared parents).
    """
    common = Parser(add_help=False)

    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    common.add_argument("-c", "--config", metavar="FILE", default=default(None),
                        help="config file (default: $MIGRATOR_CONFIG, ./migrator.toml, "
                             "~/.config/migrator/config.toml)")
    common.add_argument("-q", "--quiet", action="store_true", default=default(False),
                        help="print nothing on success (errors still go to stderr)")
    common.add_argument("-v", "--verbose", action="count", default=default(0),
                        help="more detail; -vv logs protocol traffic (secrets redacted)")
    common.add_argument("--json", action="store_true", default=default(False),
                        help="machine-readable output")
    common.add_argument("--traceback", action="store_true", default=default(False),
                        help="show the Python traceback of an error")
    common.add_argument("--log-file", metavar="FILE", default=default(None),
                        help="also append log lines to FILE")
    common.add_argument("--progress-interval", metavar="SECONDS", type=positive_seconds,
                        default=default(60.0),
                        help="off a terminal, log a progress line this often (default: 60)")
    return common


# options before the command that take a value (which could look like a command name)
VALUED_OPTIONS = ("-c", "--config", "--log-file", "--progress-interval")


def command_named(argv: Sequence[str]) -> str | None:
    """The command an argument list names, if it names a known one (else None)."""
    args = iter(argv)
    for arg in args:
        if arg in VALUED_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is loaded."""
    common = common_options(top_level=False)
    parser = Parser(
        prog="migrator", parents=[common_options(top_level=True)],
        description="Move or back up mailboxes without losing, duplicating or altering mail.")
    parser.add_argument("--version", action="version", version=f"migrator {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = command_named(argv) if argv is not None else None
    for module in modules([named] if named else None):
        module.register(subparsers, common)
    return parser


def choose_reporter(env: Environment, args: argparse.Namespace) -> Reporter:
    if args.quiet:
        return NullReporter()
    if args.json:  # stdout carries only JSON lines; stderr only errors
        return JsonReporter(env.stdout)
    if env.stderr_isatty:
        from migrator.cli.bars import TqdmReporter  # tqdm only for a terminal

        return TqdmReporter(env.stderr, env.clock)
    return LineReporter(env.clock, args.progress_interval)


class LogFile(logging.FileHandler):
    """`--log-file`: a log file that cannot be written (a full disk) is said once on stderr
    and then left alone; logging's default is a traceback on stderr for every line."""

    def __init__(self, filename: str, stderr: TextIO) -> None:
        super().__init__(filename, encoding="utf-8")
        self._stderr = stderr
        self._failed = False

    def _give_up(self, exc: BaseException | None) -> None:
        if not self._failed:
            self._failed = True
            reason = getattr(exc, "strerror", None) or exc
            self._stderr.write(f"migrator: warning: cannot write log file {self.baseFilename}: "
                               f"{reason}; logging to it stopped\n")

    def emit(self, record: logging.LogRecord) -> None:
        if not self._failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self._give_up(sys.exc_info()[1])

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self._give_up(exc)

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # what is still buffered cannot be written either
            self._give_up(exc)


def configure_logging(env: Environment, args: argparse.Namespace,
                      reporter: Reporter) -> list[logging.Handler]:
    level = logging.INFO
    if args.quiet or args.json:  # with --json, stderr carries errors only
        level = logging.ERROR
    elif args.verbose >= 2:
        level = logging.DEBUG
    bars: Any = sys.modules.get("migrator.cli.bars")  # loaded only for a terminal's bars
    console = (bars.BarSafeHandler if bars is not None and isinstance(reporter, bars.TqdmReporter)
               else logging.StreamHandler)
    handlers: list[logging.Handler] = [console(env.stderr)]
    handlers[0].setFormatter(logging.Formatter("%(message)s"))
    if args.log_file:
        file_handler = open_log_file(args.log_file, env.stderr)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        file_handler.setLevel(logging.DEBUG if args.verbose >= 2 else logging.INFO)
        handlers.append(file_handler)
    logger = logging.getLogger("migrator")
    logger.setLevel(min(level, logging.INFO if args.log_file else level))
    handlers[0].setLevel(level)
    for handler in handlers:
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
    logger.propagate = False
    if args.verbose >= 2:  # protocol traffic, through the same redacting handlers
        for name in ("imapclient", "msal"):
            library = logging.getLogger(name)
            library.setLevel(logging.DEBUG)
            for handler in handlers:
                library.addHandler(handler)
    return handlers


def open_log_file(path: str, stderr: TextIO) -> LogFile:
    """The --log-file handler; a path that cannot be written is a config mistake, one line."""
    try:
        return LogFile(path, stderr)
    except OSError as exc:
        raise ConfigError(f"cannot write the log file {path}: "
                          f"{exc.strerror or exc.__class__.__name__}") from None


def restore_logging(handlers: list[logging.Handler]) -> None:
    """Leave the process's logging as we found it (tests run many commands in-process)."""
    logger = logging.getLogger("migrator")
    for handler in handlers:
        for name in ("migrator", "imapclient", "msal"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
          env: Environment) -> argparse.Namespace:
    """Parse into the injected streams (--help and --version print, then raise SystemExit)."""
    with contextlib.redirect_stdout(env.stdout), contextlib.redirect_stderr(env.stderr):
        return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one command; return its exit status. Never raises."""
    env = env or Environment()
    try:
        args = parse(build_parser(argv), argv, env)
    except UsageError as exc:  # before the options are known: no --traceback to honour
        env.stderr.write(f"migrator: error: {exc}\n")
        return ExitStatus.USAGE
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if isinstance(exc.code, int) else ExitStatus.USAGE
    handlers: list[logging.Handler] = []
    reporter = choose_reporter(env, args)
    ctx = Context(env=env, args=args, emit=reporter)
    try:
        check(args)
        handlers = configure_logging(env, args, reporter)
        with contextlib.closing(reporter):  # bars are gone before an error line is written
            return int(args.func(ctx))
    except MigratorError as exc:
        return report_error(env, args, exc, exc.exit_status)
    except KeyboardInterrupt:
        env.stderr.write("migrator: interrupted\n")
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # the one place where anything unexpected is caught
        if is_disk_full(exc):  # whichever write met it first: the same line, the same code
            return report_error(env, args, exc, ExitStatus.STORAGE, full=True)
        status = report_error(env, args, exc, ExitStatus.ERROR, internal=True)
        return status
    finally:
        ctx.close()
        restore_logging(handlers)


def report_error(env: Environment, args: argparse.Namespace, exc: BaseException,
                 status: ExitStatus, internal: bool = False, full: bool = False) -> int:
    if args.traceback or args.verbose:
        traceback.print_exception(exc, file=env.stderr)
    text = redact(str(exc)) or exc.__class__.__name__
    if full:
        text = str(disk_full(f"cannot write {_written(exc)}", exc))
    elif internal:  # one line: a database error's SQL and parameters only with --traceback
        text = f"internal error: {redact(unexpected_error_text(exc))} (run with --traceback)"
    env.stderr.write(f"migrator: error: {text}\n")
    return status


def _written(exc: BaseException) -> str:
    """The file a full disk refused, when the error names it; else the archive."""
    name = getattr(exc, "filename", None)
    return redact(str(name)) if name else "to the archive"


def main(argv: Sequence[str] | None = None) -> int:
    # What is loaded by now (SQLAlchemy, argparse, the commands) lives as long as the
    # process: move it out of the cyclic collector's way, or every full collection during a
    # pull walks those hundreds of thousands of objects again (~5% of a POP3 pull's CPU).
    gc.freeze()
    return run(sys.argv[1:] if argv is None else argv, Environment())
