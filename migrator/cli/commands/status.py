"""`migrator status`: what the manifest holds, per account and folder, and the last runs."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from migrator.archive.summary import AccountSummary, RunSummary, summarise
from migrator.cli.context import Context
from migrator.cli.progress import human_bytes
from migrator.errors import ExitStatus
from migrator.timestamps import local_text


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("status", parents=[common],
                                   help="show what the archive holds and the last runs")
    parser.add_argument("--folders", action="store_true", help="list every folder")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    accounts: list[AccountSummary] = []
    runs: list[RunSummary] = []
    if not ctx.manifest_missing():  # looking must not create an archive
        with ctx.manifest().session() as session:
            accounts, runs = summarise(session)
    if ctx.args.json:
        ctx.out_json({
            "archive": str(ctx.settings().archive.path),
            "accounts": [{**asdict(a), "messages": a.messages, "bytes": a.bytes}
                         for a in accounts],
            "runs": [asdict(r) for r in runs],
        })
        return ExitStatus.OK
    if ctx.args.quiet:
        return ExitStatus.OK
    ctx.out(f"archive: {ctx.settings().archive.path}")
    if not accounts:
        ctx.out("no accounts archived yet")
    for account in accounts:
        render_account(ctx, account)
    if runs:
        ctx.out("\nrecent runs:")
        for summary in runs:
            ctx.out("  " + run_line(summary))
    return ExitStatus.OK


def render_account(ctx: Context, account: AccountSummary) -> None:
    ctx.out(f"\n{account.name} ({account.source_kind}): {len(account.folders)} folders, "
            f"{account.messages} messages, {human_bytes(account.bytes)}, "
            f"{account.pushed} pushed")
    if account.last_run:
        ctx.out(f"  last run: {run_line(account.last_run)}")
    if ctx.args.folders:
        for folder in account.folders:
            gone = f", {folder.gone} gone from source" if folder.gone else ""
            ctx.out(f"  {folder.name}: {folder.messages} messages, "
                    f"{human_bytes(folder.bytes)}{gone}")


def run_line(summary: RunSummary) -> str:
    when = local_text(summary.started_at)
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    who = f" {summary.account}" if summary.account else ""
    return f"#{summary.id} {when} {summary.command}{who}: {summary.outcome}" + (
        f" ({counts})" if counts else "")
