"""What every thread of one account's IMAP pull shares: settings, manifest, counters, stop flag.

Threads report into it (counts, failure lines, a fatal error) under its lock; the engine reads
the outcome when they are done.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.auth import TokenProvider
from migrator.budget import ByteBudget
from migrator.config import Account
from migrator.engine.events import Emit, Notice
from migrator.engine.imap.jobs import FolderJob, WorkQueue
from migrator.engine.results import JobResult
from migrator.errors import ConnectError, RetryableError, TokenExpired
from migrator.retry import RetryPolicy, retry
from migrator.sources.imap import ImapSource
from migrator.wire import imapconn

log = logging.getLogger(__name__)

BUDGET_BYTES = 12 * 1024 * 1024  # fetched but not yet written, all connections together
RECONNECTS = RetryPolicy(attempts=6, base_delay=0.2, max_delay=330.0)


@dataclass
class PullContext:
    account: Account
    manifest: Manifest
    store: BlobStore
    emit: Emit
    result: JobResult
    account_id: int = 0
    run_id: int | None = None
    tokens: TokenProvider | None = None
    budget: ByteBudget = field(default_factory=lambda: ByteBudget(BUDGET_BYTES))
    queue: WorkQueue = field(default_factory=WorkQueue)
    jobs: list[FolderJob] = field(default_factory=list)
    db_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    fatal_error: BaseException | None = None
    connection_error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.account.name

    def connect(self, force_refresh: bool = False) -> ImapSource:
        """A logged-in source connection (AuthError / ConnectError name the account)."""
        endpoint = self.account.source
        client = imapconn.connect(endpoint, self.account.name, self.tokens, force_refresh)
        try:
            return ImapSource(client)
        except BaseException:
            imapconn.close_quietly(client)
            raise

    def reconnect(self, failure: BaseException) -> ImapSource:
        """A connection in place of one that failed with `failure` (a fresh token after
        AccessTokenExpired): a failed connect is retried, a refused login is final."""
        refresh = isinstance(failure, TokenExpired)
        return retry(lambda: self.connect(force_refresh=refresh), policy=RECONNECTS,
                     retryable=(ConnectError, RetryableError), stop=self.stopped,
                     what=f"{self.name}: reconnect failed")

    def count(self, **amounts: int) -> None:
        with self._lock:
            self.result.counts.update({k: v for k, v in amounts.items() if v})

    def fail(self, line: str) -> None:
        with self._lock:
            self.result.fail(line)

    def notice(self, text: str, level: str = "warning") -> None:
        self.emit(Notice(level, text, self.account.name))

    def fatal(self, exc: BaseException) -> None:
        """Stop the whole pull: the first such error is what the run reports."""
        with self._lock:
            if self.fatal_error is None:
                self.fatal_error = exc
        self.stopped.set()
        self.queue.stop()

    def lost_connection(self, exc: BaseException) -> None:
        """A connection gave up for good; others may carry on."""
        with self._lock:
            if self.connection_error is None:
                self.connection_error = exc
