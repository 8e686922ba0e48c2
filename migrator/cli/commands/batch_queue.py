"""`migrator batch submit USERS.csv`: a batch's mailboxes into the shared queue, for workers;
and `batch status` of a submitted batch: each mailbox's state, its worker, its lease.

The queue keeps each CSV row as given, which holds secret references only (`batchfile`
refuses a literal password): every worker resolves them on its own host. A refused row is
recorded as failed with its reason and without its values.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from migrator.archive.mailbox_state import mailbox_state
from migrator.archive.work_queue import PENDING, NewItem, Submitted, WorkQueue, require_postgresql
from migrator.batchfile import load_batch
from migrator.cli.batch_reports import report_row
from migrator.cli.context import Context
from migrator.engine.worker import outcome_from_record
from migrator.errors import ExitStatus


def register_submit(actions: Any, common: argparse.ArgumentParser) -> None:
    parser = actions.add_parser("submit", parents=[common],
                                help="queue every mailbox of the CSV for `migrator worker` "
                                     "(PostgreSQL manifest)")
    parser.add_argument("csv", metavar="USERS.csv", type=Path)
    add_batch_name(parser)
    parser.set_defaults(func=submit)


def add_batch_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", metavar="NAME",
                        help="the batch's name in the queue (default: the CSV's file name "
                             "without .csv)")


def batch_name(ctx: Context) -> str:
    return str(ctx.args.batch or Path(ctx.args.csv).stem)


def raw_records(path: Path) -> dict[int, dict[str, str]]:
    """The CSV's rows as given, by the line number `load_batch` reports them at (it has
    read the same file already, so errors were said there)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        records = {}
        for row in reader:
            records[reader.line_num] = {key: value.strip() for key, value in row.items()
                                        if key and value and value.strip()}
        return records


def submit(ctx: Context) -> int:
    settings = ctx.settings()
    require_postgresql(settings.archive.database, "batch submit")
    queue = WorkQueue(ctx.manifest(), "batch submit")
    rows = load_batch(ctx.args.csv, settings)
    records = raw_records(ctx.args.csv)
    items = [NewItem(row.name, row.line, records[row.line] if row.account else None,
                     row.error) for row in rows]
    try:
        done = queue.submit(batch_name(ctx), Path(ctx.args.csv).name, items)
    finally:
        queue.close()
    status = ExitStatus.PARTIAL if done.refused else ExitStatus.OK
    if ctx.args.json:
        ctx.out_json({"command": "batch submit", "exit_status": int(status),
                      "batch": done.batch, "pass": done.pass_number, "queued": done.queued,
                      "refused": [{"line": line, "account": account, "error": error}
                                  for line, account, error in done.refused],
                      "already_pending": [{"account": account, "batch": batch}
                                          for account, batch in done.already_pending]})
    elif not ctx.args.quiet or status != ExitStatus.OK:
        render_submitted(ctx, done)
    return status


def render_submitted(ctx: Context, done: Submitted) -> None:
    for line, account, error in done.refused:
        ctx.out(f"  line {line} {account}: refused: {error}")
    for account, batch in done.already_pending:
        ctx.out(f"  {account}: still queued or running in batch {batch}: not queued again")
    ctx.out(f"batch {done.batch} pass {done.pass_number}: {len(done.queued)} queued, "
            f"{len(done.refused)} refused, {len(done.already_pending)} already pending; "
            "start `migrator worker` on any number of hosts")


def queue_status(ctx: Context) -> int | None:
    """The queue's view of a submitted batch; None when the batch was never submitted (or
    the manifest is not PostgreSQL), so `batch status` shows the `batch run` view."""
    manifest = ctx.manifest()
    if manifest.engine.dialect.name != "postgresql":
        return None
    queue = WorkQueue(manifest)
    try:
        items = queue.latest_pass(batch_name(ctx))
    finally:
        queue.close()
    if not items:
        return None
    with manifest.session() as session:
        for item in items:
            item["manifest"] = mailbox_state(session, item["account"], True)
    if ctx.args.json:
        ctx.out_json([status_row(item) for item in items])
    else:
        render_status(ctx, items)
    return ExitStatus.OK


def status_row(item: dict[str, Any]) -> dict[str, Any]:
    outcome = item["outcome"]
    report = report_row(outcome_from_record(item["line"], item["account"], outcome)) \
        if outcome else {}
    state = item["manifest"]
    return {"line": item["line"], "account": item["account"], "state": item["state"],
            "result": outcome["state"] if outcome else None, "pass": item["pass_number"],
            "attempts": item["attempts"], "worker": item["worker"],
            "heartbeat_age": _seconds(item["heartbeat_age"]) if item["state"] in PENDING
            else None,
            "lease_left": _seconds(item["lease_left"]),
            "verified": outcome.get("verified") if outcome else None,
            "archived": state.archived, "pushed": state.pushed,
            "this_pass": report, "error": item["error"],
            "started_at": item["started_at"], "finished_at": item["finished_at"]}


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def render_status(ctx: Context, items: list[dict[str, Any]]) -> None:
    ctx.out(f"{'mailbox':24} {'state':8} {'result':9} {'pass':>4} {'try':>3} "
            f"{'worker':22} {'lease':>12} {'archived':>9} {'pushed':>8}  errors")
    counts: dict[str, int] = {}
    for item in items:
        row = status_row(item)
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        lease = "-"
        if row["heartbeat_age"] is not None and row["state"] == "running":
            lease = f"{row['heartbeat_age']:.0f}s/{max(row['lease_left'] or 0, 0):.0f}s"
        ctx.out(f"{row['account'][:24]:24} {row['state']:8} {row['result'] or '-':9} "
                f"{row['pass']:>4} {row['attempts']:>3} {(row['worker'] or '-')[:22]:22} "
                f"{lease:>12} {row['archived']:>9} {row['pushed']:>8}"
                + (f"  {row['error']}" if row["error"] else ""))
    summary = ", ".join(f"{counts[state]} {state}" for state in
                        ("queued", "running", "done", "failed") if counts.get(state))
    ctx.out(f"batch {batch_name(ctx)}: {len(items)} mailboxes, {summary} "
            "(lease: seconds since the last heartbeat / seconds left)")
