"""`migrator migrate ACCOUNT...`: pull and push pipelined, then verify."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.commands.accounts import render, run_each
from migrator.cli.context import Context
from migrator.cli.options import add_account_options
from migrator.cli.progress import human_bytes
from migrator.config import Account
from migrator.engine.results import JobResult


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "migrate", parents=[common],
        help="pull from the source and push to the target at the same time, then verify")
    add_account_options(
        parser, dry_run="show what the pull would fetch and the push plan; change nothing")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the comparison of archive and target at the end")
    parser.set_defaults(func=run)


def migrate_one(ctx: Context, account: Account) -> JobResult:
    """Migrate one account (the caller holds its lock); a re-run the no-op probe proves has
    nothing to pull, push or compare again is settled by it, without loading SQLAlchemy,
    imapclient or MSAL (engine/migrate_probe.py). The rest is imported only when needed."""
    from migrator.wire.tls import warm_up

    warm_up(account.source, account.target)  # the CA store loads while the probe gets ready
    if account.target is not None and not ctx.args.dry_run and not ctx.args.no_verify:
        from migrator.engine.migrate_probe import probe_migrate

        probed = probe_migrate(account, ctx.settings(), ctx.emit)
        if probed is not None:
            return probed
    from migrator.cli.commands.push import show_plan, without_target
    from migrator.engine.migrate import migrate_account
    from migrator.engine.pull import pull_account

    if account.target is None:
        return without_target(ctx, account, "migrate")
    if ctx.args.dry_run:
        pulled = pull_account(account, ctx.manifest(), ctx.store(), ctx.emit, dry_run=True)
        if not ctx.args.json:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(pulled.counts.items()))
            ctx.out(f"migrate {account.name} (dry run): pull: {counts or 'nothing to do'}")
        planned = show_plan(ctx, account, command="migrate")
        planned.counts.update({f"pull_{k}": v for k, v in pulled.counts.items()})
        return planned
    return migrate_account(account, ctx.manifest(), ctx.store(), ctx.emit,
                           verify=not ctx.args.no_verify)


def run(ctx: Context) -> int:
    return render(ctx, run_each(ctx, "migrate", migrate_one), summary_line,
                  silent_dry_run=True)


def summary_line(result: JobResult) -> str:
    if result.error:
        return f"migrate {result.account}: failed"
    counts = result.counts
    parts = [f"pulled {counts['pull_fetched']}", f"pushed {counts['push_pushed']}",
             f"already there {counts['push_already_there']}",
             *([f"merged {counts['push_merged']}"] if counts.get("push_merged") else []),
             f"refused {counts['push_refused']}", f"failed {counts['push_failed']}",
             f"{human_bytes(counts['push_bytes'])} pushed in {counts['push_seconds']}s"]
    if "verify_missing" in counts:
        parts.append(f"verified: {counts['verify_present']} present, "
                     f"{counts['verify_missing']} missing, {counts['verify_refused']} refused"
                     + (f", {counts['verify_missing_folders']} folder(s) missing"
                        if counts["verify_missing_folders"] else ""))
    return f"migrate {result.account}: {result.outcome}: " + ", ".join(parts)
