"""`migrator show ID`: one archived message (the ID `search` gives), as headers and text or,
with `--raw`, byte for byte as it was archived."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.context import Context
from migrator.errors import ExitStatus, ManifestError, UsageError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("show", parents=[common],
                                   help="print an archived message found by `search`")
    parser.add_argument("id", type=int, metavar="ID", help="the message's ID in `search`")
    parser.add_argument("--raw", action="store_true",
                        help="the message's bytes exactly as archived (RFC 5322)")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    from migrator.archive.manifest import AccountRow, FolderRow, MessageRow
    from migrator.archive.search_text import extract

    args = ctx.args
    if args.raw and args.json:
        raise UsageError("show: --raw and --json do not go together")
    if ctx.manifest_missing():
        raise ManifestError(f"no archive at {ctx.settings().archive.path}")
    with ctx.manifest().session() as session:
        found = session.query(MessageRow.sha256, MessageRow.internaldate, FolderRow.name,
                              AccountRow.name).join(FolderRow, FolderRow.id ==
                                                    MessageRow.folder_id).join(
            AccountRow, AccountRow.id == FolderRow.account_id).filter(
            MessageRow.id == args.id).first()
    if found is None:
        raise UsageError(f"no archived message has ID {args.id} (see `migrator search`)")
    sha, internaldate, folder, account = found
    data = ctx.store().read(sha)
    if args.raw:
        write_bytes(ctx, data)
        return ExitStatus.OK
    text = extract(data)
    fields = {"id": args.id, "account": account, "folder": folder, "sha256": sha,
              "size": len(data), "date": text.date or internaldate, "from": text.sender,
              "to": text.recipients, "cc": text.cc, "subject": text.subject}
    if args.json:
        ctx.out_json(fields | {"text": text.body})
        return ExitStatus.OK
    for name in ("account", "folder", "date", "from", "to", "cc", "subject"):
        if fields[name]:
            ctx.out(f"{name.capitalize()}: {fields[name]}")
    ctx.out()
    ctx.out(text.body)
    return ExitStatus.OK


def write_bytes(ctx: Context, data: bytes) -> None:
    """To stdout's binary side; a text-only stream (tests in-process) gets the bytes as
    surrogate escapes."""
    stream = ctx.env.stdout
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(data.decode("utf-8", "surrogateescape"))
        return
    buffer.write(data)
    buffer.flush()
