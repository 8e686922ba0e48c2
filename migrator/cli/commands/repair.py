"""`migrator repair ACCOUNT...`: fetch missing or corrupted archived blobs again from the source."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.commands.accounts import render, run_each
from migrator.cli.context import Context
from migrator.config import Account
from migrator.engine.repair.job import repair_account
from migrator.engine.results import JobResult


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "repair", parents=[common],
        help="fetch missing or corrupted archived messages again from the source")
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT")
    parser.add_argument("--all", action="store_true", help="every account in the config")
    parser.set_defaults(func=run, dry_run=False)


def repair_one(ctx: Context, account: Account) -> JobResult:
    return repair_account(account, ctx.manifest(), ctx.store(), ctx.emit)


def run(ctx: Context) -> int:
    return render(ctx, run_each(ctx, "repair", repair_one), summary_line)


def summary_line(result: JobResult) -> str:
    if result.error:
        return f"repair {result.account}: failed"
    counts = result.counts
    return (f"repair {result.account}: {result.outcome}: {counts['damaged']} damaged blob(s), "
            f"{counts['repaired']} repaired, {counts['not_repaired']} not repairable")
