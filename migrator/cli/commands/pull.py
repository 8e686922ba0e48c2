"""`migrator pull ACCOUNT...`: copy new mail from each account's source into the archive."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.commands.accounts import render, run_each
from migrator.cli.context import Context
from migrator.cli.options import add_account_options
from migrator.config import Account
from migrator.engine.pull import pull_account
from migrator.engine.results import JobResult


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("pull", parents=[common],
                                   help="copy new mail from a source into the archive")
    add_account_options(parser,
                        dry_run="show what would be fetched (and deleted), change nothing")
    parser.set_defaults(func=run)


def pull_one(ctx: Context, account: Account) -> JobResult:
    """Pull one account (the caller holds its lock); a re-run the no-op probe proves has
    nothing to do is settled by the probe, without loading the manifest's machinery."""
    from migrator.wire.tls import warm_up

    warm_up(account.source)  # the CA store loads while the probe gets ready
    if not ctx.args.dry_run:
        from migrator.engine.imap.noop_probe import probe_pull

        probed = probe_pull(account, ctx.settings(), ctx.emit)
        if probed is not None:
            return probed
    return pull_account(account, ctx.manifest(), ctx.store(), ctx.emit,
                        dry_run=ctx.args.dry_run)


def run(ctx: Context) -> int:
    return render(ctx, run_each(ctx, "pull", pull_one))
