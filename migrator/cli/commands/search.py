"""`migrator search ACCOUNT QUERY`: the account's archived messages that match, newest first.

Messages not indexed yet (archived with `search_index = false`, before this migrator, or
while an indexer was killed) are indexed first, so a search never misses archived mail.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from migrator.cli.context import Context
from migrator.cli.options import positive_int
from migrator.errors import ExitStatus, ManifestError, UsageError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "search", parents=[common], help="find archived messages by words and fields",
        description='QUERY: words, "phrases", OR, NOT, prefix*, and the filters from:, to:, '
                    "cc:, subject:, folder: (wildcards * ?), after:YYYY-MM-DD (on or after), "
                    "before:YYYY-MM-DD")
    parser.add_argument("account", metavar="ACCOUNT")
    parser.add_argument("query", nargs="+", metavar="QUERY")
    parser.add_argument("--limit", type=positive_int, default=50,
                        help="at most this many messages (default 50)")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    from migrator.archive import search_index, search_query

    args = ctx.args
    query = search_query.parse(" ".join(args.query))
    if ctx.manifest_missing():  # looking must not create an archive
        raise ManifestError(f"no archive at {ctx.settings().archive.path}")
    manifest = ctx.manifest()
    if not search_index.supported(manifest):
        raise UsageError("search needs an SQLite or PostgreSQL manifest")
    with manifest.session() as session:
        if not search_query.account_exists(session, args.account):
            raise UsageError(f"account {args.account} has nothing in the archive "
                             f"(run `migrator pull {args.account}` first)")
        search_query.validate(session, query)
    search_index.catch_up(manifest, ctx.store(), args.account)
    with manifest.session() as session:
        hits = search_query.run(session, args.account, query, args.limit)
    if args.json:
        ctx.out_json({"account": args.account, "query": " ".join(args.query),
                      "messages": [{"id": h.id, "date": h.date, "folder": h.folder,
                                    "from": h.sender, "subject": h.subject} for h in hits]})
        return ExitStatus.OK
    if not hits:
        ctx.out("no messages found")
        return ExitStatus.OK
    rows = [(str(h.id), (h.date or "")[:16].replace("T", " "), h.folder, h.sender, h.subject)
            for h in hits]
    for line in table(("ID", "DATE", "FOLDER", "FROM", "SUBJECT"), rows):
        ctx.out(line)
    return ExitStatus.OK


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns as wide as their widest cell (FROM at most 30, FOLDER 24); SUBJECT last."""
    limits = (10, 16, 24, 30)
    cells = [tuple(_cut(c, limits[i]) if i < len(limits) else c for i, c in enumerate(row))
             for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return ["  ".join([c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]])
            .rstrip() for row in cells]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
