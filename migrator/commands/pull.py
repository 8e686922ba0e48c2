"""`migrator pull ACCOUNT...`: copy new mail from each account's source into the archive."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.context import Context
from migrator.engine.pull import pull_account
from migrator.engine.results import JobResult
from migrator.errors import ExitStatus, MigratorError, Scope


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("pull", parents=[common],
                                   help="copy new mail from a source into the archive")
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT")
    parser.add_argument("--all", action="store_true", help="every account in the config")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be fetched (and deleted), change nothing")
    parser.set_defaults(func=run)


def selected_accounts(ctx: Context) -> list[str]:
    names = list(ctx.settings().accounts) if ctx.args.all else list(ctx.args.accounts)
    if not names:
        raise MigratorError("name at least one ACCOUNT, or --all")
    for name in names:
        ctx.settings().account(name)  # unknown names fail before any work starts
    return names


def run(ctx: Context) -> int:
    results = []
    for name in selected_accounts(ctx):
        account = ctx.settings().account(name)
        try:
            results.append(pull_account(account, ctx.manifest(), ctx.store(), ctx.emit,
                                        dry_run=ctx.args.dry_run))
        except MigratorError as exc:
            if exc.scope is not Scope.ACCOUNT:
                raise
            results.append(JobResult(name, "pull", error=str(exc),
                                     exit_status=exc.exit_status))
    return render(ctx, results)


def render(ctx: Context, results: list[JobResult]) -> int:
    """Print the per-account outcome and return the worst exit status."""
    if ctx.args.json:
        for result in results:
            ctx.out_json(result.as_dict())
    for result in results:
        if result.error:
            ctx.env.stderr.write(f"migrator: error: {result.error}\n")
        for line in result.failures:
            ctx.env.stderr.write(f"migrator: failed: {result.account}: {line}\n")
        if not ctx.args.json and not ctx.args.quiet:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
            ctx.out(f"{result.command} {result.account}: {result.outcome}"
                    + (f" ({counts})" if counts else ""))
    return max((result.exit_status for result in results), default=ExitStatus.OK)
