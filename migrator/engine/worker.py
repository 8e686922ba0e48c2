"""A worker: claims mailboxes from the shared queue and runs N at a time, each isolated as in
`batch run`, while a heartbeat thread keeps their leases alive.

Two workers must never work on one mailbox at once, and a mailbox job cannot be stopped half
way from outside. So a worker that cannot renew a lease before it may have expired (the
database out of reach, the process frozen) or finds a lease taken over ends its whole process
at once, through `abandon`: every mailbox job survives a kill -9 (that is how they are built
and tested), and the mailboxes are taken over by other workers when their leases expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from migrator.archive.work_queue import DONE, FAILED, Lease, WorkQueue
from migrator.batchfile import BatchRow, merged_tables
from migrator.config import Settings, Table, parse_account
from migrator.engine.batch import MailboxJob, MailboxOutcome, run_mailbox
from migrator.engine.events import Emit
from migrator.errors import ConfigError, ExitStatus, unexpected_error_text

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4  # renew every quarter of the lease...
SAFE_FRACTION = 0.75  # ...and give up once three quarters have passed without a renewal
TICK = 0.25  # seconds between the heartbeat's checks of its deadlines
RELEASE_DELAY = 2.0  # seconds a released lease stays ours: time for this process to end

Abandon = Callable[[str, ExitStatus], NoReturn]
Finished = Callable[[Lease, MailboxOutcome, bool], None]


@dataclass(frozen=True)
class WorkerOptions:
    parallel: int
    lease_seconds: float = 60.0
    max_attempts: int = 3
    mode: str = "forever"  # forever | once | until-empty
    poll_seconds: float = 2.0
    grace_seconds: float = 30.0


def row_of(lease: Lease, settings: Settings) -> BatchRow:
    """The queued CSV row merged into this worker's base config, as `batch run` does."""
    if lease.record is None:
        return BatchRow(lease.line, lease.account, error="the row was refused at submit")
    path = Path(lease.source_file)
    try:
        data = merged_tables(path, lease.line, lease.record, settings)
        account = parse_account(lease.account, Table(data, path, f"line {lease.line}"),
                                settings.archive)
    except ConfigError as exc:
        return BatchRow(lease.line, lease.account, error=str(exc))
    return BatchRow(lease.line, lease.account, account)


def outcome_record(outcome: MailboxOutcome, worker: str) -> dict[str, Any]:
    """What the queue keeps of a mailbox's outcome (counts and reasons; never a secret)."""
    return {"state": outcome.state, "counts": dict(outcome.counts),
            "failures": outcome.failures, "error": outcome.error,
            "seconds": round(outcome.seconds, 3), "verified": outcome.verified,
            "exit_status": int(outcome.exit_status), "worker": worker}


def outcome_from_record(line: int, account: str, record: dict[str, Any]) -> MailboxOutcome:
    return MailboxOutcome(line, account, record["state"], Counter(record.get("counts", {})),
                          list(record.get("failures", [])), record.get("error"),
                          float(record.get("seconds", 0.0)), record.get("verified"),
                          exit_status=ExitStatus(record.get("exit_status", 0)))


class Worker:
    """Claims, runs and records mailboxes until its mode says stop or `stop` is set."""

    def __init__(self, queue: WorkQueue, name: str, options: WorkerOptions,
                 job: MailboxJob, row: Callable[[Lease], BatchRow], emit: Emit,
                 abandon: Abandon, finished: Finished) -> None:
        self.queue, self.name, self.options = queue, name, options
        self.job, self.row, self.emit = job, row, emit
        self.abandon, self.finished = abandon, finished
        self.stop = threading.Event()  # claim nothing more; finish within the grace period
        self.hurry = threading.Event()  # hand the running mailboxes back now
        self.outcomes: list[MailboxOutcome] = []
        self._held: dict[int, tuple[Lease, float]] = {}  # item id -> (lease, give-up time)
        self._lock = threading.Lock()
        self._heartbeat_stop = threading.Event()

    def run(self) -> list[MailboxOutcome]:
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            with ThreadPoolExecutor(self.options.parallel, thread_name_prefix="mailbox") as pool:
                self._loop(pool)
        finally:
            self._heartbeat_stop.set()
            heartbeat.join()
        return self.outcomes

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        running: set[Future[None]] = set()
        claimed_once = False
        stopping_since: float | None = None
        while True:
            may_claim = not self.stop.is_set() and not (
                self.options.mode == "once" and claimed_once)
            if may_claim and len(running) < self.options.parallel:
                for lease in self._claim(self.options.parallel - len(running)):
                    running.add(pool.submit(self._work, lease))
                claimed_once = True
            if not running and self._done(claimed_once):
                return
            if self.stop.is_set():
                stopping_since = stopping_since or time.monotonic()
                over = time.monotonic() - stopping_since >= self.options.grace_seconds
                if running and (over or self.hurry.is_set()):
                    self._hand_back()
            if running:
                finished, _ = wait(running, timeout=self.options.poll_seconds,
                                   return_when=FIRST_COMPLETED)
                running -= finished
                for future in finished:
                    future.result()  # _work catches everything; a bug here should show
            else:
                self.stop.wait(self.options.poll_seconds)

    def _done(self, claimed_once: bool) -> bool:
        if self.stop.is_set() or (self.options.mode == "once" and claimed_once):
            return True
        return self.options.mode == "until-empty" and self.queue.unfinished() == 0

    def _claim(self, count: int) -> list[Lease]:
        sent = time.monotonic()
        leases = self.queue.claim(self.name, count, self.options.lease_seconds,
                                  self.options.max_attempts)
        with self._lock:
            for lease in leases:
                self._held[lease.item_id] = (lease, self._give_up_time(sent))
        return leases

    def _give_up_time(self, sent: float) -> float:
        return sent + self.options.lease_seconds * SAFE_FRACTION

    def _work(self, lease: Lease) -> None:
        """One mailbox, then its outcome recorded under the lease (if still ours)."""
        log.info("%s: claimed by %s (attempt %d)", lease.account, self.name, lease.attempts)
        outcome = run_mailbox(self.row(lease), self.job, self.emit)
        state = DONE if outcome.state == "complete" else FAILED
        with self._lock:  # the work is over: no more renewals (one now would find it done)
            self._held.pop(lease.item_id, None)
        try:
            recorded = self.queue.finish(lease, state, outcome_record(outcome, self.name),
                                         outcome.error)
        except Exception as exc:  # the lease expires; another worker redoes a delta pass
            log.warning("%s: cannot record the outcome in the queue: %s", lease.account,
                        unexpected_error_text(exc))
            recorded = False
        with self._lock:
            self.outcomes.append(outcome)
        self.finished(lease, outcome, recorded)

    def _heartbeat(self) -> None:
        interval = self.options.lease_seconds / RENEWALS_PER_LEASE
        next_renewal = time.monotonic() + interval
        while not self._heartbeat_stop.wait(min(TICK, interval)):
            now = time.monotonic()
            with self._lock:
                held = list(self._held.values())
            overdue = sorted(lease.account for lease, give_up in held if now > give_up)
            if overdue:
                self.abandon(f"worker {self.name}: could not renew the lease of "
                             f"{', '.join(overdue)} in time; stopping at once so that another "
                             "worker can take its mailboxes over", ExitStatus.CONNECTION)
            if now < next_renewal or not held:
                continue
            self._renew([lease for lease, _ in held], now)
            next_renewal = now + interval

    def _renew(self, leases: list[Lease], sent: float) -> None:
        try:
            lost = self.queue.renew(leases, self.options.lease_seconds)
        except Exception as exc:  # tried again at the next tick until the give-up time
            log.warning("worker %s: cannot renew its leases: %s", self.name,
                        unexpected_error_text(exc))
            return
        with self._lock:  # a mailbox that finished meanwhile was not lost
            lost = [lease for lease in lost if lease.item_id in self._held]
        if lost:
            self.abandon(f"worker {self.name}: lost the lease of "
                         f"{', '.join(sorted(lease.account for lease in lost))} to another "
                         "worker; stopping at once", ExitStatus.CONNECTION)
        with self._lock:
            for lease in leases:
                if lease.item_id in self._held:
                    self._held[lease.item_id] = (lease, self._give_up_time(sent))

    def _hand_back(self) -> NoReturn:
        """Stopped and the grace period is over: give the leases back, end the process."""
        with self._lock:
            held = [lease for lease, _ in self._held.values()]
        for lease in held:
            try:
                self.queue.release(lease, RELEASE_DELAY)
            except Exception as exc:  # the lease then expires on its own
                log.warning("%s: cannot release its lease: %s", lease.account,
                            unexpected_error_text(exc))
        names = ", ".join(sorted(lease.account for lease in held))
        self.abandon(f"worker {self.name}: stopped; handed back {names} to the queue",
                     ExitStatus.INTERRUPTED)
