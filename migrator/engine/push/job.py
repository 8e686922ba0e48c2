"""`push`: copy what the archive has and the target lacks; nothing twice, nothing lost.

A push runs in rounds. Each round first settles intents left by an interrupted run or a
lost connection (`reconcile`), then feeds chunks of unpushed messages (the folders' chunks
in turn) to `connections` workers that pipeline their APPENDs. A round that leaves new
unknown outcomes is followed by another; rounds are bounded. With `source_done` (used by
`migrate`) the feeder keeps polling the manifest for messages the running pull adds, until
the pull has finished.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from itertools import groupby, zip_longest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.runs import record_run
from migrator.budget import freeze_startup_objects, release_large_buffers
from migrator.config import Account
from migrator.engine.events import Emit, Notice, TaskFinished, TaskStarted, TaskTotals
from migrator.engine.push.chunk_queue import ChunkQueue
from migrator.engine.push.context import Parallelism, PushContext
from migrator.engine.push.plan import (
    FolderPreview,
    create_folder_tree,
    make_plan,
    planned_targets,
    preview,
    ready_folders,
    ready_or_refused,
    replan_if_new_folders,
)
from migrator.engine.push.ready import ReadyConnections
from migrator.engine.push.recheck import not_kept, recheck
from migrator.engine.push.reconcile import Finder, already_there, needs_index, reconcile
from migrator.engine.push.rows import Candidate, in_state, pending, pending_totals
from migrator.engine.push.twins import held_back, settle_copies
from migrator.engine.push.worker import Chunk, PushWorker
from migrator.engine.results import JobResult
from migrator.engine.verify.listings import Listings
from migrator.errors import ConfigError
from migrator.targets import target_identity
from migrator.targets.control import TargetControl
from migrator.wire import imapconn

log = logging.getLogger(__name__)

CHUNK = 48  # messages per intent transaction (a pipeline window holds 64)
CHUNK_BYTES = 8 << 20  # and at most this many bytes (a bigger message alone), so that big
# messages spread over the connections instead of keeping one busy while the others are done
PAGE = 2000  # candidates read from the manifest at once
POLL = 0.3  # at most this long between looks for new messages while a pull still runs
TOTALS_EVERY = 1.0  # while a pull runs, the push's totals (progress only: a count over every
# archived message) are read again at most this often, not after every page of 2,000
MAX_ROUNDS = 8
AFTER_CHECKS = 2  # checks after pushing: the second finding loss ends the run PARTIAL
SUMMARY_KEYS = ("pushed", "already_there", "merged", "refused", "failed", "bytes")


def new_context(account: Account, manifest: Manifest, store: BlobStore, emit: Emit,
                command: str = "push") -> PushContext:
    endpoint = account.target
    if endpoint is None:
        raise ConfigError(f"{account.name}: no [accounts.{account.name}.target] in the config")
    result = JobResult(account.name, command)
    ctx = PushContext(account, endpoint, manifest, store, emit, result,
                      target_identity(endpoint), imapconn.tokens_for(endpoint, account.name))
    ctx.parallelism = Parallelism(endpoint.connections, emit, account.name)
    return ctx


def push_account(account: Account, manifest: Manifest, store: BlobStore, emit: Emit, *,
                 source_done: Callable[[], bool] | None = None,
                 control: TargetControl | None = None,
                 committed: threading.Event | None = None,
                 fetching: threading.Event | None = None,
                 appended: dict[int, int] | None = None,
                 listings: Listings | None = None) -> JobResult:
    """Push one account's archive to its target; the result says what happened.

    `control` (migrate's, kept open for its verify) is used and left open; by default the
    push opens its own control connection and closes it.
    With `source_done` (a running pull), `committed` is set whenever the pull commits: the
    feeder reads new rows then instead of at its next poll; `fetching` is set once the pull
    has found something to fetch or has ended: until then no worker is started.
    `appended`, if given, receives message id -> UID for every APPEND the target confirmed
    with APPENDUID in this run (`migrate` hands them to its verification), and `listings`
    the re-checks' listings of the target folders (`verify/listings.py`)."""
    ctx = new_context(account, manifest, store, emit)
    ctx.appended = appended
    ctx.listings = listings
    ctx.committed = committed
    ctx.fetching = fetching
    release_large_buffers()  # message-sized buffers go back to the OS once sent
    freeze_startup_objects()
    started = time.monotonic()
    for key in SUMMARY_KEYS:
        ctx.result.counts[key] = 0
    with record_run(manifest, "push", account.name, account.source.kind) as run:
        ctx.run_id = run.id
        own = control is None
        if control is None:
            control = TargetControl(ctx.endpoint, account.name, ctx.tokens)
        control.stop = ctx.stop
        outcome = "failed"
        try:
            if source_done is not None and not source_done():
                _log_in_early(ctx)  # a running pull is about to bring messages to push
            ctx.layout = control.layout()
            make_plan(ctx)
            _start(ctx)
            _rounds(ctx, control, source_done)
            create_folder_tree(ctx, control)
            outcome = ctx.result.outcome
        finally:
            if own:
                control.close()
            if ctx.ready is not None:
                ctx.ready.close()
            ctx.result.counts["seconds"] = round(time.monotonic() - started)
            run.counts.update(ctx.result.counts)
            if ctx.result.failures:
                run.partial()
            emit(TaskFinished("push", account.name, {"outcome": outcome,
                                                     **dict(ctx.result.counts)}))
        _notes(ctx)
    return ctx.result


def preview_push(account: Account, manifest: Manifest, store: BlobStore,
                 emit: Emit) -> tuple[str, list[FolderPreview]]:
    """The plan of a push (`--dry-run`): LIST at the target, nothing written anywhere."""
    ctx = new_context(account, manifest, store, emit)
    control = TargetControl(ctx.endpoint, account.name, ctx.tokens)
    try:
        ctx.layout = control.layout()
        lines = preview(ctx)
    finally:
        control.close()
    where = f"{ctx.target} ({ctx.endpoint.host}:{ctx.endpoint.port}, " \
            f"{ctx.endpoint.connections} connection(s))"
    return where, lines


def _start(ctx: PushContext) -> None:
    with ctx.manifest.session() as session:
        count, size = pending_totals(session, ctx.target, ctx.targets)
    ctx.emit(TaskStarted("push", ctx.name, count, size))
    if count:
        _log_in_early(ctx)


def _log_in_early(ctx: PushContext) -> None:
    """The workers' logins, started now: they overlap planning, re-checks and reconciling.

    A plain push starts them once it knows there is something to send; in `migrate` they
    start with the push itself, beside the control connection's sign-in and LIST, since the
    pull is fetching by the time they are done (a run the no-op probe settles never gets
    here; one whose pull brings nothing logs out the connections nobody took)."""
    if ctx.ready is None and ctx.parallelism is not None:
        ctx.ready = ReadyConnections(ctx.endpoint, ctx.name, ctx.tokens, ctx.parallelism.limit)


def _rounds(ctx: PushContext, control: TargetControl,
            source_done: Callable[[], bool] | None) -> None:
    """Re-check what earlier runs left at the target, push, then check what this run sent:
    a message the target accepted but does not keep is sent again (once)."""
    if recheck(ctx, control):
        _totals(ctx)
    _push_rounds(ctx, control, source_done)
    for attempt in range(AFTER_CHECKS):
        gone = recheck(ctx, control, set(ctx.fed.values()))
        if not gone:
            return
        if attempt == AFTER_CHECKS - 1:
            not_kept(ctx, gone)
            return
        _push_rounds(ctx, control, None)


def _push_rounds(ctx: PushContext, control: TargetControl,
                 source_done: Callable[[], bool] | None) -> None:
    finder = Finder(ctx, control)
    for _ in range(MAX_ROUNDS):
        reconcile(ctx, control)
        settle_copies(ctx)  # copies whose primary an earlier run or round pushed
        unknown = ctx.result.counts["unknown_outcome"]
        idle = not _anything_to_push(ctx)
        if idle and source_done is not None:
            _wait_for_pull_work(ctx)
            idle = not _anything_to_push(ctx)
        if idle and (source_done is None or source_done()):
            return  # no workers, no sign-ins (the pull, if any, has ended)
        _pipeline(ctx, control, finder, source_done)
        if ctx.fatal is not None:
            raise ctx.fatal
        ctx.failed_now.update(settle_copies(ctx))  # a primary not there: next run
        if ctx.result.counts["unknown_outcome"] == unknown:
            return
        source_done = None  # the pull is over once a round has ended
    reconcile(ctx, control)
    _unsettled(ctx)


def _wait_for_pull_work(ctx: PushContext) -> None:
    """In `migrate` with nothing pending yet: wait until the pull has found mail to fetch or
    has ended, so that a run whose pull brings nothing starts no worker and readies no
    folder (the workers' logins, started early, are simply logged out)."""
    while ctx.fetching is not None and not ctx.stop.is_set() \
            and not ctx.fetching.wait(POLL):
        pass


def _anything_to_push(ctx: PushContext) -> bool:
    with ctx.manifest.session() as session:
        page = pending(session, ctx.target, ctx.targets, 0, len(ctx.failed_now) + 1)
    return any(message.id not in ctx.failed_now for message in page)


def _unsettled(ctx: PushContext) -> None:
    """After the last round: messages whose APPENDs kept failing without an answer."""
    with ctx.manifest.session() as session:
        left = in_state(session, ctx.target, ctx.targets, ["failed"])
    unsent = [message for message in left if message.id not in ctx.failed_now]
    for message in unsent:
        ctx.fail(f"{ctx.folder_names.get(message.folder_id)}: "
                 f"{message.message_id or f'archive message {message.id}'}: "
                 f"connection lost on every attempt ({MAX_ROUNDS} rounds); run push again")
    ctx.result.counts["failed"] += len(unsent)


def _pipeline(ctx: PushContext, control: TargetControl, finder: Finder,
              source_done: Callable[[], bool] | None) -> None:
    """Start the workers, feed them, and wait until they have written every outcome."""
    assert ctx.parallelism is not None
    count = ctx.parallelism.limit
    work = ChunkQueue(maxsize=2 * count)
    threads = [threading.Thread(target=PushWorker(ctx, index, work).run,
                                name=f"push-{ctx.name}-{index}", daemon=True)
               for index in range(count)]
    for thread in threads:
        thread.start()
    try:
        _feed(ctx, control, finder, work, source_done, threads)
    except BaseException:
        ctx.stop.set()
        raise
    finally:
        for _ in threads:
            _put(work, None, threads, ctx)
        for thread in threads:
            thread.join()


def _put(work: ChunkQueue, chunk: Chunk | None,
         threads: list[threading.Thread], ctx: PushContext) -> bool:
    """Hand a chunk over; False when no worker is left to take it."""
    while any(thread.is_alive() for thread in threads):
        try:
            work.put(chunk, timeout=0.2)
            return True
        except queue.Full:
            if ctx.stop.is_set() and chunk is not None:
                return False
    return False


def _feed(ctx: PushContext, control: TargetControl, finder: Finder,
          work: ChunkQueue, source_done: Callable[[], bool] | None,
          threads: list[threading.Thread]) -> None:
    """Read unpushed messages page by page (polling while a pull runs) into chunks.

    Target folders are made ready together (`ready_folders`): those of each page before its
    first chunk, and while a pull runs every planned one as soon as it is planned, before
    its first message is archived."""
    cursor = 0
    totals_at = time.monotonic()
    if source_done is not None:
        ready_folders(ctx, control, planned_targets(ctx))
    while not ctx.stop.is_set():
        if ctx.committed is not None:
            ctx.committed.clear()  # a commit from here on wakes the wait below
        finished = source_done is None or source_done()
        if source_done is not None and replan_if_new_folders(ctx):
            _totals(ctx)
            totals_at = time.monotonic()
            ready_folders(ctx, control, planned_targets(ctx))
        with ctx.manifest.session() as session:
            page = pending(session, ctx.target, ctx.targets, cursor, PAGE)
        if not page:
            if finished:
                return
            (ctx.committed or ctx.stop).wait(POLL)
            continue
        cursor = page[-1].id
        copies = held_back(ctx, cursor)  # merged folders: sent once, settled after
        fresh = sorted((m for m in page if m.id not in ctx.failed_now and m.id not in copies),
                       key=lambda m: (ctx.targets[m.folder_id], m.id))
        for message in fresh:  # a later re-plan (new folders) must not move these
            ctx.fed.setdefault(ctx.folder_names[message.folder_id], ctx.targets[message.folder_id])
        ready_folders(ctx, control, [ctx.targets[m.folder_id] for m in fresh])
        per_folder = [_folder_chunks(ctx, control, finder, folder, list(group))
                      for folder, group in groupby(fresh, key=lambda m: ctx.targets[m.folder_id])]
        if not all(_put(work, chunk, threads, ctx) for chunk in _across_folders(per_folder)):
            return
        if not finished:  # pipelined: these went out while the pull was still running
            ctx.count("sent_while_pulling", len(fresh))
        if source_done is not None and (finished or time.monotonic() - totals_at >= TOTALS_EVERY):
            _totals(ctx)
            totals_at = time.monotonic()


def _folder_chunks(ctx: PushContext, control: TargetControl, finder: Finder, folder: str,
                   messages: list[Candidate]) -> list[Chunk]:
    """The chunks to send of one folder's messages (none if the folder was refused)."""
    if not ready_or_refused(ctx, control, folder):
        fresh = [m for m in messages if m.id not in ctx.failed_now]
        ctx.failed_now.update(m.id for m in fresh)  # they stay pending for the next run
        ctx.count("failed", len(fresh))
        return []
    if needs_index(ctx, folder):
        finder.refresh(folder)
    messages = already_there(ctx, finder, folder, messages)
    return [Chunk(folder, part) for part in _chunks(messages)]


def _across_folders(per_folder: list[list[Chunk]]) -> Iterator[Chunk]:
    """One chunk of each folder in turn, so that the waiting chunks hold several folders
    and the workers can each keep to one (`chunk_queue.py`)."""
    for turn in zip_longest(*per_folder):
        yield from (chunk for chunk in turn if chunk is not None)


def _chunks(messages: list[Candidate]) -> Iterator[tuple[Candidate, ...]]:
    """At most CHUNK messages and CHUNK_BYTES bytes each (a bigger message alone)."""
    start, size = 0, 0
    for end, message in enumerate(messages):
        if end > start and (end - start == CHUNK or size + message.size > CHUNK_BYTES):
            yield tuple(messages[start:end])
            start, size = end, 0
        size += message.size
    if start < len(messages):
        yield tuple(messages[start:])


def _totals(ctx: PushContext) -> None:
    with ctx.manifest.session() as session:
        count, size = pending_totals(session, ctx.target, ctx.targets)
    done = sum(ctx.result.counts[k] for k in ("pushed", "already_there", "merged", "refused",
                                              "failed"))
    ctx.emit(TaskTotals("push", ctx.name, count + done, size + ctx.result.counts["bytes"]))


def _notes(ctx: PushContext) -> None:
    """Tell the user about renamed and skipped folders and keywords the target dropped."""
    assert ctx.plan is not None
    for note in ctx.plan.notes():
        ctx.emit(Notice("info", f"folder {note}", ctx.name))
    if ctx.dropped_keywords:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(ctx.dropped_keywords.items()))
        ctx.emit(Notice("warning", f"the target cannot keep keywords (PERMANENTFLAGS); kept in "
                        f"the archive only: {listed}", ctx.name))
        ctx.result.counts["keywords_dropped"] = sum(ctx.dropped_keywords.values())
