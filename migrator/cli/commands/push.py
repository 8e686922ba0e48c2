"""`migrator push ACCOUNT...`: copy what the archive has and the target lacks."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.commands.accounts import render, run_each
from migrator.cli.context import Context
from migrator.cli.options import add_account_options
from migrator.cli.progress import human_bytes
from migrator.config import Account
from migrator.engine.push.job import preview_push, push_account
from migrator.engine.push.plan import FolderPreview
from migrator.engine.results import JobResult
from migrator.errors import ExitStatus


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("push", parents=[common],
                                   help="copy archived mail the target lacks to the target")
    add_account_options(parser,
                        dry_run="print the folder map, counts and bytes; change nothing")
    parser.set_defaults(func=run)


def without_target(ctx: Context, account: Account, command: str) -> JobResult:
    """An account with nothing to push to: skipped with --all, an error when named."""
    result = JobResult(account.name, command)
    if getattr(ctx.args, "all", False):
        result.counts["no_target"] = 1
        return result
    result.error = f"{account.name}: no [accounts.{account.name}.target] in the config"
    result.exit_status = ExitStatus.CONFIG
    return result


def push_one(ctx: Context, account: Account) -> JobResult:
    if account.target is None:
        return without_target(ctx, account, "push")
    if ctx.args.dry_run:
        return show_plan(ctx, account)
    return push_account(account, ctx.manifest(), ctx.store(), ctx.emit)


def run(ctx: Context) -> int:
    return render(ctx, run_each(ctx, "push", push_one), summary_line,
                  silent_dry_run=True)


def show_plan(ctx: Context, account: Account, command: str = "push") -> JobResult:
    """`--dry-run`: the folder map with counts and bytes, nothing written anywhere."""
    target, lines = preview_push(account, ctx.manifest(), ctx.store(), ctx.emit)
    result = JobResult(account.name, command)
    result.counts["to_push"] = sum(line.to_push for line in lines)
    result.counts["bytes"] = sum(line.bytes_to_push for line in lines)
    if ctx.args.json:
        ctx.out_json({"account": account.name, "target": target, "dry_run": True,
                      "folders": [plan_dict(line) for line in lines], **result.counts})
        return result
    ctx.out(f"{command} {account.name} (dry run): target {target}")
    width = max([len(line.mapping.source) for line in lines] + [13])
    ctx.out(f"  {'source folder':<{width}}  {'messages':>8}  {'to push':>7}  {'bytes':>9}  "
            "target folder")
    for line in lines:
        ctx.out(f"  {line.mapping.source:<{width}}  {line.messages:>8}  {line.to_push:>7}  "
                f"{human_bytes(line.bytes_to_push):>9}  {describe_target(line)}")
    ctx.out(f"  total: {result.counts['to_push']} messages to push, "
            f"{human_bytes(result.counts['bytes'])}; nothing was changed")
    return result


def describe_target(line: FolderPreview) -> str:
    mapping = line.mapping
    if mapping.target is None:
        return f"(skipped: {mapping.reason})"
    extra = [mapping.explain()]
    if line.merged:
        extra.append(f"{line.merged} also in {', '.join(mapping.merged_with)}: sent once")
    if line.done:
        extra.append(f"{line.done} already pushed")
    if line.refused:
        extra.append(f"{line.refused} refused before")
    if line.unknown:
        extra.append(f"{line.unknown} to look for at the target first")
    return f"{mapping.target} ({'; '.join(extra)})"


def plan_dict(line: FolderPreview) -> dict[str, Any]:
    return {"source": line.mapping.source, "target": line.mapping.target,
            "reason": line.mapping.reason, "renamed": line.mapping.renamed,
            "merged_with": list(line.mapping.merged_with), "merged": line.merged,
            "messages": line.messages, "to_push": line.to_push, "bytes": line.bytes_to_push,
            "done": line.done, "refused": line.refused, "unknown": line.unknown}


def summary_line(result: JobResult) -> str:
    """pushed, already there, refused, failed, bytes, time: the end of every push."""
    if result.error:
        return f"{result.command} {result.account}: failed"
    counts = result.counts
    text = (f"{result.command} {result.account}: {result.outcome}: pushed {counts['pushed']}, "
            f"already there {counts['already_there']}, "
            + (f"merged {counts['merged']}, " if counts.get("merged") else "") +
            f"refused {counts['refused']}, "
            f"failed {counts['failed']}, {human_bytes(counts['bytes'])} in "
            f"{counts['seconds']}s")
    if counts.get("folders_created"):
        text += f", {counts['folders_created']} folder(s) created"
    return text
