"""`migrator export ACCOUNT --format maildir|mbox|eml DEST`: the archive as files mail
clients open, byte for byte; re-running adds only what is new, a killed run resumes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from migrator.cli.commands.accounts import render
from migrator.cli.context import Context
from migrator.engine.export.job import FORMATS, ExportRequest, export_account
from migrator.engine.export.plan import Window, parse_when
from migrator.errors import ManifestError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "export", parents=[common],
        help="write an account's archived mail as Maildir, mbox or .eml files")
    parser.add_argument("account", metavar="ACCOUNT")
    parser.add_argument("dest", metavar="DEST", type=Path,
                        help="directory to export into (new, empty, or an earlier export)")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--folder", action="append", default=[], metavar="PATTERN",
                        help="only archived folders matching this shell pattern (repeatable)")
    parser.add_argument("--since", type=_when, metavar="DATE",
                        help="only messages received on or after DATE (YYYY-MM-DD or ISO time)")
    parser.add_argument("--before", type=_when, metavar="DATE",
                        help="only messages received before DATE")
    parser.add_argument("--ids", type=_ids, metavar="ID,ID,...",
                        help="only these messages (the IDs `migrator search` shows)")
    parser.set_defaults(func=run)


def _when(text: str) -> Any:
    try:
        return parse_when(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def _ids(text: str) -> frozenset[int]:
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of message IDs: {text!r}") from None
    if not ids:
        raise argparse.ArgumentTypeError("--ids needs at least one message ID")
    return ids


def run(ctx: Context) -> int:
    args = ctx.args
    if ctx.manifest_missing():  # looking must not create an archive
        raise ManifestError(f"no archive at {ctx.settings().archive.path}")
    request = ExportRequest(args.account, args.fmt, args.dest.expanduser().absolute(),
                            args.folder, Window(args.since, args.before), args.ids)
    result = export_account(request, ctx.manifest(), ctx.store(), ctx.emit)
    return render(ctx, [result])
