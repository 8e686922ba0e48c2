"""`migrator worker`: run the mailboxes of submitted batches, N at a time, on this host.

Start it on any number of hosts that share the manifest's PostgreSQL database and the
archive directory. SIGTERM (or Ctrl-C) stops claiming; mailboxes still running after
`--grace` seconds (or at a second signal) are handed back to the queue and the process ends
at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from typing import Any, NoReturn

from migrator.archive.work_queue import Lease, WorkQueue, require_postgresql
from migrator.cli.commands.batch import mailbox_job
from migrator.cli.context import Context
from migrator.cli.options import positive_int, positive_seconds
from migrator.engine.batch import MailboxOutcome, batch_status
from migrator.engine.worker import Worker, WorkerOptions, row_of
from migrator.errors import ExitStatus


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("worker", parents=[common],
                                   help="run queued batch mailboxes (`batch submit`) here")
    parser.add_argument("--parallel", type=positive_int, metavar="N",
                        help="mailboxes at once (default: [batch] parallel, 4)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_const", dest="mode", const="once",
                      help="claim up to N mailboxes once, run them, exit")
    mode.add_argument("--until-empty", action="store_const", dest="mode", const="until-empty",
                      help="exit when no mailbox is queued or running anywhere")
    parser.set_defaults(mode="forever")
    parser.add_argument("--lease", type=positive_seconds, default=60.0, metavar="SECONDS",
                        help="a mailbox whose worker stops renewing is taken over after this "
                             "long (default: 60)")
    parser.add_argument("--max-attempts", type=positive_int, default=3, metavar="N",
                        help="claims of one mailbox before it is marked failed (default: 3)")
    parser.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                        help="after SIGTERM, how long running mailboxes may finish before "
                             "they are handed back (default: 30)")
    parser.add_argument("--poll", type=positive_seconds, default=2.0, metavar="SECONDS",
                        help="how often an idle worker looks for work (default: 2)")
    parser.set_defaults(func=run)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run(ctx: Context) -> int:
    settings = ctx.settings()
    require_postgresql(settings.archive.database, "migrator worker")
    queue = WorkQueue(ctx.manifest(), "migrator worker")
    options = WorkerOptions(ctx.args.parallel or settings.batch.parallel, ctx.args.lease,
                            ctx.args.max_attempts, ctx.args.mode, ctx.args.poll,
                            max(0.0, ctx.args.grace))
    name = worker_name()

    def abandon(message: str, status: ExitStatus) -> NoReturn:
        """End the process now: its mailbox jobs cannot be stopped otherwise, and each one
        resumes safely wherever it is taken over (as after kill -9)."""
        word = "stopped" if status == ExitStatus.INTERRUPTED else "error"
        ctx.env.stderr.write(f"migrator: {word}: {message}\n")
        for stream in (ctx.env.stdout, ctx.env.stderr, sys.stdout, sys.stderr):
            stream.flush()
        os._exit(int(status))

    worker = Worker(queue, name, options, mailbox_job(ctx), lambda lease: row_of(lease, settings),
                    ctx.emit, abandon, lambda lease, outcome, recorded:
                    say_finished(ctx, lease, outcome, recorded))
    def on_signal(*_: object) -> None:  # the first one stops claiming, a second hurries
        (worker.hurry if worker.stop.is_set() else worker.stop).set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        outcomes = worker.run()
    finally:
        queue.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    status = batch_status(outcomes) if outcomes else ExitStatus.OK
    if worker.stop.is_set():
        ctx.env.stderr.write(f"migrator: stopped: worker {name}: its running mailboxes "
                             "finished\n")
    if ctx.args.json:
        ctx.out_json({"command": "worker", "worker": name, "exit_status": int(status),
                      "mailboxes": len(outcomes),
                      "complete": sum(o.state == "complete" for o in outcomes)})
    elif not ctx.args.quiet or status != ExitStatus.OK:
        complete = sum(outcome.state == "complete" for outcome in outcomes)
        ctx.out(f"worker {name}: {len(outcomes)} mailboxes, {complete} complete, "
                f"{len(outcomes) - complete} need attention")
    return status


def say_finished(ctx: Context, lease: Lease, outcome: MailboxOutcome, recorded: bool) -> None:
    lost = "" if recorded else " (its lease was lost: not recorded; another worker has it)"
    if ctx.args.json:
        ctx.out_json({"event": "mailbox", "account": lease.account, "batch": lease.batch,
                      "pass": lease.pass_number, "attempt": lease.attempts,
                      "state": outcome.state, "verified": outcome.verified,
                      "error": outcome.error, "recorded": recorded})
    elif not ctx.args.quiet:
        reason = f": {outcome.error}" if outcome.error else ""
        ctx.out(f"{lease.account}: {outcome.state}{reason} (batch {lease.batch} pass "
                f"{lease.pass_number}, attempt {lease.attempts}, {outcome.seconds:.1f}s){lost}")
