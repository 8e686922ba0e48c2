"""One target connection's share of a push: intents, pipelined APPENDs, outcomes.

A worker takes chunks (messages of one target folder) from the shared queue, keeping to one
folder where it can (`chunk_queue.py`). Before any message of a chunk is sent, the chunk's
intents are committed, in the same transaction as the outcomes that arrived since the last
commit (`ledger.py`); that commit runs while the previous chunk goes out (`ahead.py`).
Throttled APPENDs wait the server's suggested time and go again; a lost connection (or
`AccessTokenExpired`) leaves the unanswered APPENDs as intents for reconciliation, reconnects
(with a fresh token) and goes on with what was never sent.

Crash points for the kill -9 tests (inert unless MIGRATOR_TEST_KILL_AT is set, see
`migrator.testhook`): `push-intents` (a chunk's intents committed, nothing of it sent) and
`push-recorded` (outcomes committed) in `ledger.py`, `push-sent` (an APPEND written to the
socket, its reply not read) here.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial

from migrator.archive.blobs import sha256_hex
from migrator.engine.push.ahead import ChunkAhead
from migrator.engine.push.chunk_queue import ChunkQueue
from migrator.engine.push.context import PushContext
from migrator.engine.push.ledger import Ledger
from migrator.engine.push.message import (
    STREAM_ABOVE,
    BlobDamaged,
    checked_pieces,
    delivery_date,
    first_piece,
    parse_date,
)
from migrator.engine.push.rows import (
    DONE,
    FAILED,
    REFUSED,
    Candidate,
    Outcome,
)
from migrator.engine.push.second_try import SecondTry
from migrator.errors import (
    ConnectError,
    ConnectionLost,
    MigratorError,
    StorageError,
    Throttled,
    TokenExpired,
)
from migrator.retry import Backoff, RetryPolicy, retry
from migrator.targets.append_items import AppendItem, AppendOutcome, Body, keep_flags
from migrator.targets.imap import AppendWriter
from migrator.targets.office365 import NOT_CONNECTED, store_flagged_after_append
from migrator.testhook import kill_point
from migrator.wire import imapconn

log = logging.getLogger(__name__)

MAX_THROTTLES_PER_MESSAGE = 30
MAX_FAILED_CONNECTS = 6
IDLE_WAIT = 0.2
FLAG_BATCH = 200
CONNECTS = RetryPolicy(attempts=MAX_FAILED_CONNECTS + 1, base_delay=1.0, max_delay=30.0)
# Sessions ended with no APPEND done in between (too many end the push): lost, 0.2 s doubling
# to 10 s; not wanted, 2 s more each time to 60 s; token expired, at once with a fresh one.
LOST = RetryPolicy(attempts=MAX_FAILED_CONNECTS * 3 + 1, base_delay=0.2, max_delay=10.0)
UNWANTED = replace(LOST, base_delay=2.0, max_delay=60.0, linear=True)
EXPIRED = replace(LOST, base_delay=0.0)
# One APPEND throttled: the server's suggested wait, else 1 s doubling to 30 s.
APPEND_THROTTLED = RetryPolicy(attempts=MAX_THROTTLES_PER_MESSAGE + 1, base_delay=1.0,
                               max_delay=30.0)


@dataclass(frozen=True)
class Chunk:
    """Messages of one target folder, handed to one worker."""

    folder: str
    messages: tuple[Candidate, ...]


class PushWorker:
    """Runs in its own thread; `index` decides whether a lowered parallelism stops it."""

    def __init__(self, ctx: PushContext, index: int, work: ChunkQueue) -> None:
        self.ctx = ctx
        self.index = index
        self.work = work
        self.writer: AppendWriter | None = None
        self.refresh = False
        self.trouble = Backoff(LOST, stop=ctx.stop, exhausted=lambda exc: ConnectError(
            f"{ctx.name}: target connection keeps failing: {exc}"),
            what=f"{ctx.name}: target connection trouble", then="reconnecting")
        self.outcomes: list[Outcome] = []
        self.ledger = Ledger(ctx)
        self.candidates = self.ledger.candidates
        self.throttles: dict[int, Backoff] = {}  # per message throttled
        self.second_try = SecondTry(ctx.name, ctx.stop)  # after a plain NO
        self.flag_later: list[AppendOutcome] = []  # appended, \\Flagged still to be set
        self.ahead = ChunkAhead(f"push-{ctx.name}-{index}-intents")
        self.unwanted = ""  # the server's words when it refuses work on this session
        self._dropped_bytes = 0

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
            self._settle()
        except BaseException as exc:  # handed to the engine, which reports it
            self.ctx.give_up(exc)
            self.ahead.close()
            self._record_quietly()
        finally:
            self.work.leave(self.index)
            self.ahead.close()
            if self.writer is not None:
                self.writer.close()

    def _loop(self) -> None:
        """Send chunk after chunk; the next one's intents are committed while the current
        one goes out (`ahead`)."""
        assert self.ctx.parallelism is not None
        self._with_connection(lambda writer: None, deque())  # log in while the feeder plans
        ending = False
        while not self.ctx.stop.is_set():
            if not self.ahead.holding:
                if ending or not self.ctx.parallelism.allows(self.index):
                    return
                try:
                    chunk = self.work.get(self.index, timeout=IDLE_WAIT)
                except queue.Empty:
                    self._settle()
                    continue
                if chunk is None:
                    return
                self._prepare(chunk)
            items = self.ahead.take()  # their intents are committed: they may go out
            if not ending and self.ctx.parallelism.allows(self.index):
                ending = self._prepare_next()
            self._send_all(deque(items))
        if self.ahead.holding:  # stopping: recorded as not sent
            self._send_all(deque(self.ahead.take()))

    def _prepare_next(self) -> bool:
        """Start committing the next chunk's intents, if one is waiting; True if the
        feeder has said there will be none."""
        try:
            chunk = self.work.get_nowait(self.index)
        except queue.Empty:
            return False
        if chunk is None:
            return True
        self._prepare(chunk)
        return False

    def _prepare(self, chunk: Chunk) -> None:
        items = [self._item(chunk.folder, message) for message in chunk.messages]
        outcomes, self.outcomes = self.outcomes, []
        self.ahead.start(items, partial(self.ledger.commit, outcomes,
                                        [(item.ref, item.folder) for item in items]))

    def _settle(self) -> None:
        """Wait for every reply (also to what went again: throttled, a plain NO), set the
        flags Exchange needs again, write outcomes down."""
        while self.writer is not None and not self.writer.dead and self.writer.in_flight:
            pending: deque[AppendItem] = deque()
            self._with_connection(AppendWriter.drain, pending)
            self._collect(pending)
            self._send_all(pending)
        self._store_flags()
        self._record([])

    def _store_flags(self) -> None:
        """`\\Flagged` again on appended messages: a SELECT and a STORE per folder, sent at once.

        Until the STORE has worked their rows stay intents, so a crash leaves them to
        reconciliation, which sets the flag too.
        """
        waiting, self.flag_later = self.flag_later, []
        if not waiting or self.writer is None or self.writer.dead:
            self._unknown(o.item for o in waiting)
            return
        by_folder: dict[str, list[AppendOutcome]] = {}
        for outcome in waiting:
            by_folder.setdefault(outcome.item.folder, []).append(outcome)
        groups = {folder: [o.uid for o in outcomes if o.uid is not None]
                  for folder, outcomes in by_folder.items()}
        try:
            failed = self.writer.store_flags(groups, "\\Flagged")
        except (ConnectionLost, Throttled) as exc:
            failed = {folder: str(exc) for folder in groups}
        for folder, outcomes in by_folder.items():
            if folder in failed:
                log.info("%s: could not set \\Flagged in %s (%s); left to reconciliation",
                         self.ctx.name, folder, failed[folder])
                self._unknown(o.item for o in outcomes)
            else:
                self.outcomes.extend(Outcome(o.item.ref, DONE, folder, o.uidvalidity, o.uid,
                                             self._keyword_note(o.item)) for o in outcomes)

    def _unknown(self, items: Iterable[AppendItem]) -> None:
        """Sent, outcome not settled: stays an intent; the next round looks at the target."""
        for item in items:
            self.ctx.count("unknown_outcome")
            with self.ctx.lock:
                self.ctx.sent_now[item.ref] = item.size

    def _send_all(self, pending: deque[AppendItem]) -> None:
        while pending and not self.ctx.stop.is_set():
            item = pending.popleft()
            try:
                self._with_connection(partial(self._submit, item=item), pending, item)
            except (BlobDamaged, StorageError) as exc:  # never sent: report, go on
                why = (f"archive blob {exc} does not match its SHA-256 (run `migrator verify "
                       "--archive`)" if isinstance(exc, BlobDamaged) else str(exc))
                self.outcomes.append(Outcome(item.ref, FAILED, item.folder, note=why))
            self._collect(pending)
            if self.unwanted:
                self._recycle(pending)
            if len(self.flag_later) >= FLAG_BATCH:
                self._store_flags()
        if pending:  # stopping: what was never sent is not at the target
            self.outcomes.extend(Outcome(i.ref, FAILED, i.folder, note="not sent: run stopped")
                                 for i in pending)

    # -- sending ----------------------------------------------------------------------------
    def _item(self, folder: str, message: Candidate) -> AppendItem:
        self.candidates[message.id] = message
        flagged = "\\Flagged" in message.flags and store_flagged_after_append(self.ctx.endpoint)
        return AppendItem(message.id, folder, message.flags, parse_date(message.internaldate),
                          message.size, store_flagged=flagged)

    def _submit(self, writer: AppendWriter, item: AppendItem) -> None:
        flags, dropped = keep_flags(item.flags, self.ctx.selected.get(item.folder))
        if dropped:
            with self.ctx.lock:
                self.ctx.dropped_keywords.update(dropped)
        sha = self.candidates[item.ref].sha256
        if item.size < STREAM_ABOVE:
            data = self.ctx.store.read(sha)
            if sha256_hex(data) != sha:
                raise BlobDamaged(sha)
            head = data
            body: Body = data
        else:  # big: streamed from the file, checked as it goes, never held in memory
            if not self.ctx.store.exists(sha):  # said before its APPEND is begun
                raise StorageError(f"blob {sha} is missing from the archive")
            body = partial(checked_pieces, self.ctx.store, sha)
            head = b"" if item.internaldate is not None else first_piece(self.ctx.store, sha)
        if item.internaldate is None:  # POP3 knows no INTERNALDATE: the delivery date
            item = replace(item, internaldate=delivery_date(head))
        started = time.monotonic()
        writer.submit(item, body, flags)
        self.ctx.sent(item.size, time.monotonic() - started)
        kill_point("push-sent")

    def _with_connection(self, step: Callable[[AppendWriter], None],
                         pending: deque[AppendItem], item: AppendItem | None = None) -> None:
        """Run `step(writer)`; if the connection is lost or refuses work, put `item` back
        unless it was sent (then its outcome is unknown), reconnect later, back off."""
        try:
            step(self._writer())
        except (ConnectionLost, Throttled) as exc:
            orphans = self._drop_connection()
            self.ctx.lost_connection(self._dropped_bytes)
            sent = item is not None and any(o.item.ref == item.ref for o in orphans)
            for outcome in orphans:
                self._outcome(outcome, pending)
            if item is not None and not sent:
                pending.appendleft(item)
            self._back_off(exc)

    def _writer(self) -> AppendWriter:
        """The live connection, or a new one (failed connects retried; a refused login and
        a run that is stopping end it)."""
        if self.writer is not None and not self.writer.dead:
            return self.writer
        early = self.ctx.ready.take(self.index) if self.ctx.ready and not self.refresh else None
        if early is not None and not early.dead:
            self.writer = early
            return self.writer
        client = retry(lambda: imapconn.connect(self.ctx.endpoint, self.ctx.name,
                                                self.ctx.tokens, force_refresh=self.refresh),
                       policy=CONNECTS, retryable=(ConnectError,), stop=self.ctx.stop,
                       what=f"{self.ctx.name}: target reconnect failed")
        self.refresh = False
        self.writer = AppendWriter(client)
        return self.writer

    def _recycle(self, pending: deque[AppendItem]) -> None:
        """Exchange said the session is not wanted: settle it, close it, retry with fewer."""
        why, self.unwanted = self.unwanted, ""
        if self.writer is not None and not self.writer.dead:
            self._with_connection(AppendWriter.drain, pending)
            self._collect(pending)
            self.unwanted = ""
        for outcome in self._drop_connection():
            self._outcome(outcome, pending)
        self.unwanted = ""
        self._back_off(Throttled(why, None))

    def _drop_connection(self) -> list[AppendOutcome]:
        """Close a lost (or unwanted) connection; return the outcomes it still held."""
        writer, self.writer = self.writer, None
        self._dropped_bytes = 0
        if writer is None:
            return []
        writer.abandon()
        self._dropped_bytes = writer.unanswered_bytes
        orphans = list(writer.outcomes)
        writer.outcomes.clear()
        writer.close()
        return orphans

    def _back_off(self, exc: BaseException) -> None:
        """A connection lost or not wanted: count it (too many in a row end the push), then
        wait as its kind asks; the next `_writer()` reconnects. A stop ends the wait."""
        self.trouble.count(exc)
        if isinstance(exc, TokenExpired):
            self.refresh = True
            self.trouble.wait(exc, policy=EXPIRED, then="reconnecting with a fresh token")
        elif isinstance(exc, Throttled):
            assert self.ctx.parallelism is not None
            self.ctx.parallelism.reduce(f"target refused a connection ({exc})")
            self.trouble.wait(exc, policy=UNWANTED)
        else:
            self.trouble.wait(exc)

    # -- outcomes -----------------------------------------------------------------------------
    def _collect(self, pending: deque[AppendItem]) -> None:
        """Move the writer's outcomes into rows to write; throttled ones go again."""
        if self.writer is None:
            return
        outcomes = list(self.writer.outcomes)
        self.writer.outcomes.clear()
        for outcome in outcomes:
            self._outcome(outcome, pending)

    def _outcome(self, outcome: AppendOutcome, pending: deque[AppendItem]) -> None:
        item = outcome.item
        if outcome.status == "throttled":
            self._throttled(outcome, pending)
            return
        if outcome.status == "done":
            self.trouble.reset()
        if outcome.status == "done" and item.store_flagged and outcome.uid is not None:
            self.flag_later.append(outcome)
        elif outcome.status == "done":
            self.outcomes.append(Outcome(item.ref, DONE, item.folder, outcome.uidvalidity,
                                         outcome.uid, self._keyword_note(item)))
        elif outcome.status == "unknown":
            self._unknown([item])
        elif self.second_try.wanted(outcome):
            pending.appendleft(item)
        else:
            state = REFUSED if outcome.status == "refused" else FAILED
            self.outcomes.append(Outcome(item.ref, state, item.folder, note=outcome.text))

    def _throttled(self, outcome: AppendOutcome, pending: deque[AppendItem]) -> None:
        """Wait what the server asks and send again; `not connected`: a new connection."""
        item = outcome.item
        assert self.ctx.parallelism is not None
        self.ctx.count("throttled")
        throttled = Throttled(outcome.text, outcome.retry_after)
        backoff = self.throttles.setdefault(item.ref, Backoff(
            APPEND_THROTTLED, stop=self.ctx.stop,
            what=f"{self.ctx.name}: target throttled an APPEND", then="sending it again"))
        try:
            backoff.count(throttled)
        except Throttled:
            self.outcomes.append(Outcome(item.ref, FAILED, item.folder,
                                         note=f"throttled too often: {outcome.text}"))
            return
        pending.appendleft(item)
        if NOT_CONNECTED in outcome.text:  # this session takes no work: back off, reconnect
            self.unwanted = outcome.text
            return
        self.ctx.parallelism.throttled()
        backoff.wait(throttled)  # a stop ends it; `_send_all` then sends nothing more

    def _keyword_note(self, item: AppendItem) -> str | None:
        _, dropped = keep_flags(item.flags, self.ctx.selected.get(item.folder))
        return f"keywords not kept by the target: {' '.join(dropped)}" if dropped else None

    def _record(self, intents: list[tuple[int, str]]) -> None:
        outcomes, self.outcomes = self.outcomes, []
        self.ledger.commit(outcomes, intents)

    def _record_quietly(self) -> None:
        try:
            self._record([])
        except MigratorError:
            log.debug("could not record outcomes while stopping")
        except Exception:
            log.exception("could not record outcomes while stopping")
