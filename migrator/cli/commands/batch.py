"""`migrator batch run|status USERS.csv --config BASE.toml`: many mailboxes, isolated."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from migrator.archive.locks import account_lock
from migrator.archive.mailbox_state import MailboxState, mailbox_state
from migrator.batchfile import BatchRow, load_batch
from migrator.cli.batch_reports import archived_bytes, pushed_bytes, report_row, write_reports
from migrator.cli.commands import batch_queue
from migrator.cli.context import Context
from migrator.cli.options import positive_int
from migrator.cli.progress import human_bytes
from migrator.config import Account
from migrator.engine.batch import MailboxJob, MailboxOutcome, batch_status, run_batch
from migrator.engine.migrate import migrate_account
from migrator.engine.pull import pull_account
from migrator.engine.results import JobResult
from migrator.errors import ExitStatus
from migrator.timestamps import local_text


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("batch", parents=[common],
                                   help="migrate or archive many mailboxes listed in a CSV")
    actions = parser.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    run_parser = actions.add_parser("run", parents=[common],
                                    help="run (or resume) every mailbox of the CSV")
    run_parser.add_argument("csv", metavar="USERS.csv", type=Path)
    run_parser.add_argument("--parallel", type=positive_int, metavar="N",
                            help="mailboxes at once (default: [batch] parallel, 4)")
    run_parser.set_defaults(func=run)
    status_parser = actions.add_parser("status", parents=[common],
                                       help="show each mailbox's progress")
    status_parser.add_argument("csv", metavar="USERS.csv", type=Path)
    batch_queue.add_batch_name(status_parser)
    status_parser.set_defaults(func=status)
    batch_queue.register_submit(actions, common)


def mailbox_job(ctx: Context) -> MailboxJob:
    """Pull (and, where the row has a target, push and verify) one mailbox under its lock."""
    manifest, store = ctx.manifest(), ctx.store()

    def job(account: Account) -> list[JobResult]:
        with account_lock(ctx.settings().archive.path, account.name):
            if account.target is None:
                return [pull_account(account, manifest, store, ctx.emit)]
            return [migrate_account(account, manifest, store, ctx.emit)]

    return job


def run(ctx: Context) -> int:
    settings = ctx.settings()
    rows = load_batch(ctx.args.csv, settings)
    parallel = ctx.args.parallel or settings.batch.parallel
    started = datetime.now().astimezone()
    outcomes = run_batch(rows, mailbox_job(ctx), parallel, ctx.emit)
    add_found(ctx, rows, outcomes)
    assert settings.batch.report_dir is not None
    csv_path, json_path = write_reports(settings.batch.report_dir, outcomes, started)
    status = batch_status(outcomes)
    if ctx.args.json:
        ctx.out_json({"command": "batch run", "exit_status": int(status),
                      "report_csv": str(csv_path), "report_json": str(json_path),
                      "mailboxes": [report_row(outcome) for outcome in outcomes]})
    elif not ctx.args.quiet or status != ExitStatus.OK:
        render_summary(ctx, outcomes, csv_path, json_path)
    return status


def add_found(ctx: Context, rows: list[BatchRow], outcomes: list[MailboxOutcome]) -> None:
    """How many messages each source holds, from what the manifest recorded of it."""
    with ctx.manifest().session() as session:
        for row, outcome in zip(rows, outcomes, strict=True):
            if row.account is not None:
                state = mailbox_state(session, row.name, row.account.target is not None)
                outcome.found = state.source_total if state.source_total is not None \
                    else state.archived


def render_summary(ctx: Context, outcomes: list[MailboxOutcome], csv_path: Path,
                   json_path: Path) -> None:
    """One screen: a line per mailbox that needs attention, then the totals."""
    states = [outcome.state for outcome in outcomes]
    for outcome in outcomes:
        if outcome.state != "complete":
            reason = outcome.error or "; ".join(outcome.failures[:3]) or "not verified"
            ctx.out(f"  line {outcome.line} {outcome.account}: {outcome.state}: {reason}")
    archived = sum(archived_bytes(outcome) for outcome in outcomes)
    pushed = sum(pushed_bytes(outcome) for outcome in outcomes)
    ctx.out(f"batch: {len(outcomes)} mailboxes, {states.count('complete')} complete, "
            f"{len(outcomes) - states.count('complete')} need attention, "
            f"{human_bytes(archived)} archived, {human_bytes(pushed)} pushed")
    ctx.out(f"report: {csv_path} and {json_path}")


def status(ctx: Context) -> int:
    rows: list[BatchRow] = load_batch(ctx.args.csv, ctx.settings())
    if ctx.manifest_missing():  # looking must not create an archive: nothing started yet
        states = [(row, MailboxState(row.name)) for row in rows]
    else:
        queued = batch_queue.queue_status(ctx)  # a batch submitted to the workers' queue
        if queued is not None:
            return queued
        with ctx.manifest().session() as session:
            states = [(row, mailbox_state(session, row.name, bool(row.account and
                                                                  row.account.target)))
                      for row in rows]
    if ctx.args.json:
        ctx.out_json([{"line": row.line, "account": row.name, "state": state.state,
                       "archived": state.archived, "bytes": state.archived_bytes,
                       "source_total": state.source_total, "pushed": state.pushed,
                       "errors": ([row.error] if row.error else []) + state.errors,
                       "last_run": state.last_run} for row, state in states])
        return ExitStatus.OK
    ctx.out(f"{'mailbox':24} {'state':12} {'archived':>9} {'of':>7} {'bytes':>10} "
            f"{'pushed':>8}  last run / errors")
    for row, state in states:
        shown = "invalid" if row.error else state.state
        total = "?" if state.source_total is None else str(state.source_total)
        when = local_text(state.last_run) if state.last_run else "-"
        errors = "; ".join(([row.error] if row.error else []) + state.errors)
        ctx.out(f"{row.name[:24]:24} {shown:12} {state.archived:>9} {total:>7} "
                f"{human_bytes(state.archived_bytes):>10} {state.pushed:>8}  {when}"
                + (f"  {errors}" if errors else ""))
    return ExitStatus.OK
