"""`migrator backup --all`: the unattended nightly archive, made for cron.

Never prompts (a missing sign-in is an error telling to run `migrator auth login`), prints
nothing on success with --quiet, one JSON summary line with --json, and holds each account's
lock so overlapping runs cannot collide.
"""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.commands.accounts import render, run_each, worst_status
from migrator.cli.commands.pull import pull_one
from migrator.cli.context import Context
from migrator.cli.options import add_account_options
from migrator.errors import ExitStatus


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "backup", parents=[common],
        help="archive accounts unattended (cron): pull each, locked, quiet, JSON summary")
    add_account_options(parser)
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    results = run_each(ctx, "backup", pull_one)
    if not ctx.args.json:
        return render(ctx, results)
    status = worst_status(results)
    for result in results:
        if result.error:
            ctx.env.stderr.write(f"migrator: error: {result.error}\n")
    ctx.out_json({
        "command": "backup",
        "outcome": "ok" if status == ExitStatus.OK else ExitStatus(status).name.lower(),
        "exit_status": int(status),
        "accounts": [result.as_dict() for result in results],
    })
    return status
