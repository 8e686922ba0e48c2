"""`migrator index ACCOUNT... [--rebuild]`: bring the search index up to date (pulls index as
they archive; this is for archives made before, or with `search_index = false`)."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.context import Context
from migrator.cli.options import add_account_options
from migrator.errors import ExitStatus, ManifestError, UsageError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("index", parents=[common],
                                   help="index archived messages for `search`")
    add_account_options(parser)
    parser.add_argument("--rebuild", action="store_true",
                        help="forget the whole archive's index first, then index these "
                             "accounts again (others are indexed again at their next search)")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    from migrator.archive import search_index

    args = ctx.args
    if ctx.manifest_missing():
        raise ManifestError(f"no archive at {ctx.settings().archive.path}")
    manifest = ctx.manifest()
    if not search_index.supported(manifest):
        raise UsageError("search needs an SQLite or PostgreSQL manifest")
    accounts = list(ctx.settings().accounts) if args.all else args.accounts
    if args.rebuild:
        search_index.clear_index(manifest)
    counts = {name: search_index.catch_up(manifest, ctx.store(), name) for name in accounts}
    if args.json:
        ctx.out_json({"indexed": counts})
    elif not args.quiet:
        for name, count in counts.items():
            ctx.out(f"{name}: indexed {count} stored message(s)")
    return ExitStatus.OK
