"""`pull` for IMAP sources (any server, Office 365 too): copy what the source has and the
archive lacks, never changing the source.

One connection lists the folders, asks every folder's STATUS in one round trip, and plans the
folders that changed, one by one; the other connections (`connections` in the config) sign in
while the first folder that may hold new mail is planned, fetch as soon as its batches are
queued, and the planning connection joins them when it is done. Every batch is committed
after its blobs are durable; a folder's sync state is recorded after its last batch. See
planner, fetcher and writer in this package for the parts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select

from migrator.archive import namespaces
from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.ingest import ensure_account
from migrator.archive.manifest import AccountRow
from migrator.archive.runs import record_run
from migrator.budget import freeze_startup_objects, release_large_buffers
from migrator.config import Account
from migrator.engine.events import Emit, TaskFinished, TaskStarted, TaskTotals
from migrator.engine.imap.context import RECONNECTS, PullContext
from migrator.engine.imap.fetcher import Fetcher
from migrator.engine.imap.folder_state import FolderState, included, may_have_new, unchanged
from migrator.engine.imap.planner import FolderPullPlan, apply_plan, describe, plan_folder
from migrator.engine.imap.records import (
    failed_uids_by_folder,
    folder_rows,
    folder_state,
    record_folder_failure,
    resolve_folder_failures,
    sync_folders,
)
from migrator.engine.imap.writer import BatchWriter
from migrator.engine.results import JobResult
from migrator.errors import ConnectError, ExitStatus
from migrator.retry import retry
from migrator.sources.imap import CommandFailed, Folder, FolderStatus, ImapSource
from migrator.wire import imapconn

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_WRITERS = 8


def pull_imap(account: Account, manifest: Manifest, store: BlobStore, emit: Emit, *,
              dry_run: bool = False) -> JobResult:
    """Pull one IMAP account into the archive (or, with `dry_run`, only say what it would do)."""
    result = JobResult(account.name, "pull")
    ctx = PullContext(account, manifest, store, emit, result,
                      tokens=imapconn.tokens_for(account.source, account.name))
    if dry_run:
        _dry_run(ctx)
        return result
    release_large_buffers()
    freeze_startup_objects()
    with record_run(manifest, "pull", account.name, account.source.kind) as run:
        ctx.run_id = run.id
        with manifest.session() as session:
            ctx.account_id = ensure_account(session, account.name, account.source.kind).id
        source = ctx.connect()  # a refused login or unreachable host: one line, no progress
        emit(TaskStarted("pull", account.name))
        summary: dict[str, object] = {"outcome": "failed"}
        try:
            _pull(ctx, source)
            summary = {"outcome": result.outcome, **dict(result.counts)}
        finally:
            run.counts.update(result.counts)
            if result.failures:
                run.partial()
            if result.error:
                run.outcome, run.error = "failed", result.error
            emit(TaskFinished("pull", account.name, summary))
    return result


def record_namespace(ctx: PullContext, planner: PlanningConnection) -> None:
    """Keep the source's personal namespace for the push's folder mapping (where the server
    has NAMESPACE; the push guesses for one that has not). Asked once per source server."""
    server = f"{ctx.account.source.host}:{ctx.account.source.port}"
    if namespaces.told_by(ctx.store.root, ctx.name) == server:
        return
    found = planner.retrying(planner.source_call(lambda s: s.namespace()))
    if found is not None:
        namespaces.save(ctx.store.root, ctx.name, found, server)


class PlanningConnection:
    """The first connection: lists, compares, plans; then fetches like the others."""

    def __init__(self, ctx: PullContext, source: ImapSource) -> None:
        self.ctx = ctx
        self.source = source
        self.handed_over = False  # the source now belongs to a Fetcher, which closes it
        self.open_folder_id: int | None = None  # the folder the last plan left EXAMINEd

    def folders(self) -> tuple[set[str], list[Folder], dict[str, FolderStatus]]:
        """(every name LIST shows, the selectable folders the config includes, their STATUS
        by wire name): two round trips, or one where the server has LIST-STATUS."""
        listed, statuses = self.retrying(self.source_call(lambda s: s.folders_with_status()))
        chosen = [f for f in listed if f.selectable and included(f.name, self.ctx.account.source)]
        missing = [f for f in chosen if f.raw_name not in statuses]
        if missing:
            statuses.update(self.retrying(self.source_call(lambda s: s.statuses(missing))))
        return {f.name for f in listed}, chosen, statuses

    def source_call(self, call: Callable[[ImapSource], T]) -> Callable[[], T]:
        return lambda: call(self.source)

    def retrying(self, operation: Callable[[], T], on_retry: Callable[[int], None] | None = None
                 ) -> T:
        """Run `operation`, reconnecting (after the backoff) on a dropped connection,
        throttling or an expired token; a NO/BAD that is not throttling is raised as it is."""
        def reconnect(failure: BaseException, attempt: int) -> None:
            self.source.close()
            self.source = self.ctx.reconnect(failure)
            if on_retry is not None:
                on_retry(attempt)

        return retry(operation, policy=RECONNECTS, on_error=reconnect, stop=self.ctx.stopped,
                     exhausted=lambda failure: ConnectError(
                         f"{self.ctx.name}: connection lost for good: {failure}"),
                     what=f"{self.ctx.name}: connection trouble", then="reconnecting")

    def plan(self, folder: Folder, state: FolderState, record: bool = True
             ) -> FolderPullPlan | None:
        """The folder's plan, or None (failure reported) if the server refuses the folder.

        A listing the connection keeps dying on (a server that cannot read a message to tell
        its size) is retried without RFC822.SIZE: batches are then cut by count alone, and
        the fetch isolates the unreadable message.
        """
        sizes = [True]

        def without_sizes(attempt: int) -> None:
            sizes[0] = attempt < 2

        self.open_folder_id = None
        try:
            plan = self.retrying(
                lambda: plan_folder(self.ctx, self.source, folder, state, sizes=sizes[0]),
                on_retry=without_sizes)
            self.open_folder_id = plan.job.folder_id
            return plan
        except CommandFailed as exc:
            reason = f"cannot read the folder: {exc.status} {exc.text}".strip()
            if record:
                with self.ctx.db_lock, self.ctx.manifest.session() as session:
                    record_folder_failure(session, self.ctx.run_id, self.ctx.account_id,
                                          folder.name, reason)
            self.ctx.fail(f"{folder.name}: {reason}")
            return None

    def close(self) -> None:
        if not self.handed_over:
            self.source.close()


def _pull(ctx: PullContext, source: ImapSource) -> None:
    planner = PlanningConnection(ctx, source)
    writer: BatchWriter | None = None
    threads: list[threading.Thread] = []
    interrupted = False
    try:
        present, chosen, statuses = planner.folders()
        record_namespace(ctx, planner)
        with ctx.db_lock, ctx.manifest.session() as session:
            ids = sync_folders(session, ctx.account_id, present, chosen)
            failed = failed_uids_by_folder(session, ctx.account_id)
            states = {name: folder_state(session, ctx.account_id, row, failed)
                      for name, row in folder_rows(session, ctx.account_id).items()
                      if name in ids}
        connections = max(1, ctx.account.source.connections)
        writer = BatchWriter(ctx, min(MAX_WRITERS, 2 * connections))
        fine: list[str] = []
        totals = [0, 0]
        for folder in largest_first(chosen, statuses):
            if ctx.stopped.is_set():
                break
            state = states[folder.name]
            status = statuses.get(folder.raw_name)
            if status is not None and unchanged(state, status, planner.source.condstore):
                ctx.count(folders_unchanged=1)
                fine.append(folder.name)
                continue
            if not threads and may_have_new(state, status):  # their sign-ins overlap planning
                threads = _start_fetchers(ctx, writer, connections - 1)
            plan = planner.plan(folder, state)
            if plan is None:
                continue
            fine.append(folder.name)
            apply_plan(ctx, plan, state)
            if plan.batches:
                if not threads:
                    threads = _start_fetchers(ctx, writer, connections - 1)
                ctx.queue.put(plan.batches)
                totals[0] += len(plan.delta.new)
                totals[1] += plan.new_bytes
                ctx.emit(TaskTotals("pull", ctx.name, totals[0], totals[1]))
        with ctx.db_lock, ctx.manifest.session() as session:
            resolve_folder_failures(session, ctx.account_id, fine)
        ctx.queue.close()
        planner.handed_over = True
        # the folder the last plan left open, if its batches are next in line (the order,
        # most messages first, is kept): a delta pass with one changed folder saves an EXAMINE
        next_folder = ctx.queue.next_folder()
        Fetcher(ctx, writer, "connection 1", planner.source,
                open_folder=next_folder if next_folder == planner.open_folder_id else None).run()
    except KeyboardInterrupt as exc:
        interrupted = True  # stop at once: committed batches are safe, the rest is redone
        ctx.fatal(exc)
        raise
    except BaseException as exc:
        ctx.fatal(exc)
        raise
    finally:
        planner.close()
        if not interrupted:
            _finish(ctx, writer, threads)


def largest_first(folders: list[Folder], statuses: dict[str, FolderStatus]) -> list[Folder]:
    """The folders in the order they are planned and fetched: most messages first (STATUS;
    a folder without one last), LIST order among equals.

    Why: in `migrate` the push works off what the pull commits, and what is left to push
    when the pull ends is what the end of the run waits for. In LIST order that was often
    the biggest folder (INBOX, which Dovecot lists last): thousands of messages into one
    target folder, where the push's connections wait on one another (Dovecot takes the
    folder's lock for every APPEND), at 27-30 MB/s against 87 MB/s for a tail spread over
    several folders (bench mailbox, 25 ms). Planned last, the small folders make that tail.
    A backup gets the folder with the most mail first."""
    def messages(folder: Folder) -> int:
        status = statuses.get(folder.raw_name)
        return (status.messages or 0) if status is not None else -1

    return sorted(folders, key=messages, reverse=True)


def _start_fetchers(ctx: PullContext, writer: BatchWriter, count: int) -> list[threading.Thread]:
    threads = []
    for index in range(count):
        fetcher = Fetcher(ctx, writer, f"connection {index + 2}")
        thread = threading.Thread(target=fetcher.run, name=fetcher.name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def _finish(ctx: PullContext, writer: BatchWriter | None,
            threads: list[threading.Thread]) -> None:
    """Wait for the connections and the committer; turn what happened into the result."""
    for thread in threads:
        thread.join()
    left = ctx.queue.drain()  # batches no connection was left to fetch
    if writer is not None:
        for batch in left:
            batch.job.incomplete = True
            batch.listed = []
            writer.complete(batch)
        writer.close()
    if ctx.fatal_error is not None:
        raise ctx.fatal_error
    for job in {id(b.job): b.job for b in left}.values():
        log.info("%s: %s: not finished", ctx.name, job.folder.name)
    abandoned = {job.folder.name: job.abandoned for job in ctx.jobs if job.abandoned}
    for name, reason in sorted(abandoned.items()):
        ctx.fail(f"{name}: {reason}")
    if ctx.connection_error is not None:
        if left:
            ctx.result.error = str(ctx.connection_error)
            ctx.result.exit_status = ExitStatus.CONNECTION
        else:
            ctx.notice(f"a connection was lost ({ctx.connection_error}); the others finished")


def _dry_run(ctx: PullContext) -> None:
    """Say per folder what a pull would fetch; write nothing (not even a run record)."""
    planner = PlanningConnection(ctx, ctx.connect())
    try:
        _, chosen, statuses = planner.folders()
        states = _readonly_states(ctx, chosen)
        for folder in chosen:
            state = states[folder.name]
            status = statuses.get(folder.raw_name)
            if status is not None and unchanged(state, status, planner.source.condstore):
                ctx.count(folders_unchanged=1)
                ctx.notice(f"{folder.name}: unchanged", "info")
                continue
            plan = planner.plan(folder, state, record=False)
            if plan is None:
                continue
            ctx.count(would_fetch=len(plan.delta.new), would_fetch_bytes=plan.new_bytes,
                      would_update_flags=len(plan.delta.flags),
                      would_mark_gone=len(plan.delta.gone))
            ctx.notice(describe(plan), "info")
    finally:
        planner.close()


def _readonly_states(ctx: PullContext, chosen: list[Folder]) -> dict[str, FolderState]:
    """Folder states as the manifest has them (a folder it lacks looks brand new)."""
    with ctx.manifest.session() as session:
        account = session.scalars(select(AccountRow.id).where(
            AccountRow.name == ctx.name)).first()
        rows = folder_rows(session, account) if account is not None else {}
        return {f.name: folder_state(session, account, rows[f.name])
                if account is not None and f.name in rows else FolderState(folder_id=-1)
                for f in chosen}
