"""Options several commands share, declared once, and the one check of how options combine.

argparse checks each option on its own; rules that involve two options (ACCOUNT vs --all,
--bytes without an account) live in `check`, so every command gets the same answer and the
same exit status (USAGE, 2) for the same mistake.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from migrator.errors import UsageError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and a UsageError, not usage text + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    """argparse type: a whole number of 1 or more (`--parallel 0` would never start a job)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def add_account_options(parser: argparse.ArgumentParser, *, dry_run: str | None = None,
                        accounts_help: str | None = None) -> None:
    """ACCOUNT..., --all and (where the command offers one) --dry-run with its own help."""
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT", help=accounts_help)
    parser.add_argument("--all", action="store_true", help="every account in the config")
    if dry_run is not None:
        parser.add_argument("--dry-run", action="store_true", help=dry_run)
    else:
        parser.set_defaults(dry_run=False)


def check(args: argparse.Namespace) -> None:
    """Raise UsageError when options that are each valid make no sense together."""
    if "all" not in args:  # not a command that works on accounts
        return
    named = bool(args.accounts)
    if named and args.all:
        raise UsageError("name accounts or use --all, not both")
    if getattr(args, "bytes", False) and not (named or args.all):
        raise UsageError("--bytes compares with a target: name an ACCOUNT or use --all")
    if not (named or args.all or getattr(args, "archive", False)):
        extra = "--archive, " if "archive" in args else ""
        raise UsageError(f"{args.command} needs {extra}at least one ACCOUNT, or --all")
