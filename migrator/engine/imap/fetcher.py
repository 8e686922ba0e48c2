"""One source connection fetching batches of message bodies, pipelined and self-healing.

A fetcher keeps up to `DEPTH` FETCH commands in flight on its connection (the next one is
sent before the current one's data is read, so no round trip is paid between batches) and
hands each message to the writer as it arrives. A batch's UIDs the server did not return are
asked for again; after `MAX_PASSES` passes those still there are recorded as failed with the
server's reason, those no longer there have simply left the folder. A dropped connection,
throttling or an expired token costs a reconnect and a re-fetch of what was missing, never of
what was already received. A message the connection keeps dying on (Dovecot says BYE when it
cannot read a message file) is given up alone after `MAX_STRIKES`, so the rest goes on.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace

from migrator.engine.imap.context import RECONNECTS, PullContext
from migrator.engine.imap.jobs import Batch, FolderJob
from migrator.engine.imap.writer import BatchWriter
from migrator.errors import AuthError, ConnectError, ConnectionLost, RetryableError, TokenExpired
from migrator.retry import Backoff, RetryPolicy, wait_unless_stopped
from migrator.sources.imap import CommandFailed, ImapSource, SourceMessage

log = logging.getLogger(__name__)

DEPTH = 2
MAX_PASSES = 3  # FETCHes of a batch that complete with UIDs still missing
MAX_STRIKES = 3  # connections lost while reading the same message
MAX_IN_A_ROW = 8  # connections lost without a single message received in between
IN_A_ROW = replace(RECONNECTS, attempts=MAX_IN_A_ROW + 1)  # one more loss ends the connection
PASSES = RetryPolicy(attempts=MAX_PASSES, base_delay=0.05, max_delay=82.5)  # between FETCHes
NO_DATA = "the server returned no data for it"


@dataclass
class Pending:
    tag: bytes
    batch: Batch
    check: bool = False  # a UID SEARCH asking which missing UIDs still exist


class Fetcher:
    def __init__(self, ctx: PullContext, writer: BatchWriter, name: str,
                 source: ImapSource | None = None, open_folder: int | None = None) -> None:
        """`source`: a connection to use first; `open_folder`: the folder it has open as the
        plan saw it (EXAMINEd by the planner: its batches need no EXAMINE again)."""
        self.ctx = ctx
        self.writer = writer
        self.name = name
        self.source: ImapSource | None = None
        self.folder_id: int | None = None  # the folder open on this connection
        self.inflight: deque[Pending] = deque()
        self.held: list[Batch] = []  # taken from the queue, not yet handed to the writer
        self.reserved = 0  # budget bytes held for the literal being read
        # connection failures with no message received in between: too many end this one
        self.trouble = Backoff(IN_A_ROW, stop=ctx.stopped, exhausted=self._lost_for_good,
                               what=f"{ctx.name}: connection trouble", then="reconnecting")
        if source is not None:
            self._attach(source)
            self.folder_id = open_folder

    def _attach(self, source: ImapSource) -> None:
        source.wire.before_literal = self._reserve
        self.source = source

    def _reserve(self, size: int) -> None:
        """Before a literal is read: wait for memory (whatever the previous literal held and
        did not hand to the writer is released first)."""
        self._release_reserved()
        self.ctx.budget.reserve(size)
        self.reserved = size

    def _release_reserved(self) -> None:
        if self.reserved:
            self.ctx.budget.release(self.reserved)
            self.reserved = 0

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Fetch until the queue is empty; errors end up in the context, never raised."""
        finished = False
        try:
            if self.source is None:
                self._attach(self.ctx.connect())  # the first connection: a failure is final
            self._loop()
            finished = not self.inflight
        except (AuthError, ConnectError, RetryableError) as exc:  # this connection, not the run
            self._abandon_held()
            self.ctx.lost_connection(exc)
        except BaseException as exc:  # a bug or a fatal error: it becomes the run's error
            self._abandon_held()
            self.ctx.fatal(exc)
        finally:
            self._release_reserved()
            if self.source is not None:
                self._close(logout=finished)

    def _close(self, logout: bool) -> None:
        """Log out if every response was read; else (the run stopped, or this connection
        failed) just shut the connection. Logging out reads first what is still coming: the
        rest of the FETCHes in flight, megabytes maybe, for nothing, and each of their
        literals through the budget, of which the last one's share was never given back: a
        message bigger than the budget, which waits until nothing is held, then waited on
        another connection forever."""
        source, self.source = self.source, None
        assert source is not None
        source.wire.before_literal = None  # whatever is read from here on holds no budget
        source.close(logout=logout)

    def _loop(self) -> None:
        while not self.ctx.stopped.is_set():
            self._fill()
            if not self.inflight:
                return
            try:
                self._read_next()
            except RetryableError as failure:
                self._recover(failure)
            except CommandFailed as exc:
                self._refused(exc)

    def _fill(self) -> None:
        while len(self.inflight) < DEPTH:
            batch = self.ctx.queue.take(self.folder_id, wait=not self.inflight)
            if batch is None:
                return
            self.held.append(batch)
            if batch.job.abandoned is not None or (
                    batch.job.folder_id != self.folder_id and not self._open(batch.job)):
                self._skip(batch)
                continue
            self._send(batch)

    def _send(self, batch: Batch) -> None:
        assert self.source is not None
        self.inflight.append(Pending(self.source.send_fetch(batch.missing()), batch))

    def _complete(self, batch: Batch) -> None:
        self.held.remove(batch)
        self.writer.complete(batch)

    def _read_next(self) -> None:
        assert self.source is not None
        pending = self.inflight[0]
        if pending.check:
            present = self.source.read_search(pending.tag)
            self.inflight.popleft()
            self._settle(pending.batch, present)
            return
        try:
            for message in self.source.read_fetch(pending.tag):
                self._accept(message)
                del message  # the writer has it: hold no body while reading the next
        finally:
            self._release_reserved()
        self.inflight.popleft()
        self._after_pass(pending.batch)

    def _accept(self, message: SourceMessage) -> None:
        for pending in self.inflight:
            if not pending.check and pending.batch.wants(message.uid):
                self.trouble.reset()
                handed = min(self.reserved, len(message.data))
                self.reserved -= handed
                self.writer.write(pending.batch, message, handed)
                return
        log.debug("%s: unrequested or repeated UID %d ignored", self.name, message.uid)

    # -- after a FETCH completes -------------------------------------------------------------
    def _after_pass(self, batch: Batch) -> None:
        missing = batch.missing()
        if not missing:
            self._complete(batch)
            return
        batch.passes += 1
        assert self.source is not None
        if batch.passes < MAX_PASSES:
            log.info("%s: %s: %d message(s) not returned, asking again", self.ctx.name,
                     batch.job.folder.name, len(missing))
            wait_unless_stopped(PASSES.delay(batch.passes), self.ctx.stopped)
            self.inflight.append(Pending(self.source.send_fetch(missing), batch))
        else:
            self.inflight.append(Pending(self.source.send_search(missing), batch, check=True))

    def _settle(self, batch: Batch, present: set[int]) -> None:
        """Last word on UIDs the server would not return: failed if still there; if
        expunged since the listing, nothing was lost and nothing failed."""
        vanished = batch.missing() - present
        if vanished:
            log.info("%s: %s: %d message(s) left the folder during the run", self.ctx.name,
                     batch.job.folder.name, len(vanished))
            batch.listed = [m for m in batch.listed if m.uid not in vanished]
        batch.give_up(batch.missing(), batch.last_error or NO_DATA)
        self._complete(batch)

    def _refused(self, exc: CommandFailed) -> None:
        """A tagged NO/BAD: keep what came, ask again for the rest."""
        pending = self.inflight.popleft()
        pending.batch.last_error = f"{exc.status} {exc.text}".strip()
        if pending.check:
            self._settle(pending.batch, pending.batch.missing())
        else:
            self._after_pass(pending.batch)

    # -- folders -----------------------------------------------------------------------------
    def _open(self, job: FolderJob) -> bool:
        """EXAMINE the job's folder; False (and the job abandoned) if it cannot be used."""
        assert not self.inflight
        self.folder_id = None
        try:
            status = self.trouble.run(lambda: self._connected().examine(job.folder),
                                      on_error=self._reconnect)
        except CommandFailed as exc:
            job.abandoned = f"cannot open the folder: {exc}"
            return False
        if status.uidvalidity != job.status.uidvalidity:
            job.abandoned = "UIDVALIDITY changed during the run; the next run re-maps it"
            return False
        self.folder_id = job.folder_id
        return True

    def _skip(self, batch: Batch) -> None:
        """A batch of an abandoned folder: nothing fetched, the folder stays unfinished."""
        batch.job.incomplete = True
        batch.listed = []
        self._complete(batch)

    # -- trouble -----------------------------------------------------------------------------
    def _recover(self, failure: BaseException) -> None:
        """Reconnect, reopen the folder and re-send what the in-flight batches still miss.

        When the connection died, the lowest missing UID of the batch being read is the
        message it died on (servers answer in UID order): it takes a strike, and after
        MAX_STRIKES it is given up alone. Throttling and token expiry blame no message.
        """
        batches: list[Batch] = []
        for pending in self.inflight:
            if pending.batch not in batches:
                batches.append(pending.batch)
        self.inflight.clear()
        reason = str(failure) or failure.__class__.__name__
        blame = isinstance(failure, ConnectionLost) and not isinstance(failure, TokenExpired)
        last_chance = self.trouble.failures + 1 >= MAX_IN_A_ROW  # this loss is the last waited
        if blame and batches and batches[0].missing():
            head = batches[0]
            suspect = min(head.missing())
            head.strikes[suspect] = head.strikes.get(suspect, 0) + 1
            if head.strikes[suspect] >= MAX_STRIKES:
                head.give_up([suspect], f"the connection was lost each time: {reason}")
        again = []
        for batch in batches:
            batch.last_error = reason
            if last_chance:
                batch.give_up(batch.missing(), reason)
            if batch.missing():
                again.append(batch)
            else:
                self._complete(batch)
        self.trouble.failed(failure)
        self._reconnect(failure)
        for batch in again:
            if batch.job.folder_id != self.folder_id and not self._open(batch.job):
                self._skip(batch)
                continue
            self._send(batch)

    def _connected(self) -> ImapSource:
        assert self.source is not None
        return self.source

    def _reconnect(self, failure: BaseException, _failures: int = 0) -> None:
        """Replace the connection that failed (after the backoff)."""
        if self.source is not None:
            self.source.close()
            self.source = None
        self.folder_id = None
        self._attach(self.ctx.reconnect(failure))

    def _lost_for_good(self, failure: BaseException) -> ConnectError:
        return ConnectError(f"{self.ctx.name}: connection lost for good: {failure}")

    def _abandon_held(self) -> None:
        """This connection is gone for good: commit what its batches received; the rest
        stays unfetched (the folder is not marked synced, so the next run fetches it)."""
        self.inflight.clear()
        for batch in list(self.held):
            batch.job.incomplete = True
            batch.listed = [m for m in batch.listed
                            if m.uid in batch.received or m.uid in batch.failed]
            self._complete(batch)
