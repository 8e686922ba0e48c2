"""What every part of one push shares: settings, the plan, counters, and a governor.

`Parallelism` lowers the number of connections when Exchange keeps throttling or says a
connection is not wanted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.auth import TokenProvider
from migrator.config import Account, Endpoint
from migrator.engine.events import Emit, Notice, TaskAdvanced
from migrator.engine.push.ready import ReadyConnections
from migrator.engine.results import JobResult
from migrator.engine.verify.listings import Listings
from migrator.folders import FolderPlan, TargetLayout
from migrator.targets.append_items import Selected
from migrator.targets.identity import Matcher

log = logging.getLogger(__name__)

THROTTLES_BEFORE_SLOWING = 3
THROTTLE_MEMORY = 60.0  # seconds a throttling reply counts toward slowing down
SERVER_GRACE = 2.0  # seconds a server may go on storing what a lost connection had sent
MAX_GRACE = 120.0
MIN_RATE = 50_000.0  # bytes/s


class Parallelism:
    """How many connections may work; lowered (never below one) when throttling repeats."""

    def __init__(self, limit: int, notify: Emit, account: str) -> None:
        self.limit = max(1, limit)
        self._notify = notify
        self._account = account
        self._recent: list[float] = []
        self._lock = threading.Lock()

    def allows(self, index: int) -> bool:
        return index < self.limit

    def throttled(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent = [t for t in self._recent if now - t < THROTTLE_MEMORY] + [now]
            if len(self._recent) < THROTTLES_BEFORE_SLOWING:
                return
            self._recent = []
        self.reduce("the target keeps throttling")

    def reduce(self, why: str) -> None:
        with self._lock:
            if self.limit == 1:
                return
            self.limit -= 1
            limit = self.limit
        self._notify(Notice("warning", f"{why}: down to {limit} connection(s)", self._account))


@dataclass
class PushContext:
    """One account's push: shared by the feeder and every connection worker."""

    account: Account
    endpoint: Endpoint
    manifest: Manifest
    store: BlobStore
    emit: Emit
    result: JobResult
    target: str  # identity of the target in the manifest
    tokens: TokenProvider | None
    account_id: int = 0
    run_id: int | None = None
    layout: TargetLayout | None = None
    plan: FolderPlan | None = None
    folder_names: dict[int, str] = field(default_factory=dict)  # folder id -> source name
    pins: dict[str, str] = field(default_factory=dict)  # source folder -> earlier target
    fed: dict[str, str] = field(default_factory=dict)  # source folder -> target, this run
    targets: dict[int, str] = field(default_factory=dict)  # folder id -> target folder
    selected: dict[str, Selected] = field(default_factory=dict)  # target folder -> SELECT
    matchers: dict[str, Matcher] = field(default_factory=dict)  # target folder -> index
    failed_now: set[int] = field(default_factory=set)  # message ids failed in this run
    refused_folders: dict[str, str] = field(default_factory=dict)  # target folder -> why
    roles: dict[str, str] = field(default_factory=dict)  # source folder -> special use
    sent_now: dict[int, int] = field(default_factory=dict)  # unknown outcome: id -> size
    copies: dict[int, int] = field(default_factory=dict)  # merged folders: copy -> primary
    copies_upto: int = 0  # the highest message id `copies` was computed with
    dropped_keywords: Counter[str] = field(default_factory=Counter)
    # message id -> the UID its APPENDUID gave in this run, kept only when a verification in
    # the same process follows (`migrate`); None: not kept
    appended: dict[int, int] | None = None
    # the re-checks' folder listings, kept for that verification too (`verify/listings.py`)
    listings: Listings | None = None
    ready: ReadyConnections | None = None  # logins started before the workers
    committed: threading.Event | None = None  # set when a running pull commits (migrate)
    # set once a running pull has found mail to fetch, or has ended (migrate)
    fetching: threading.Event | None = None
    parallelism: Parallelism | None = None
    losses: list[tuple[float, int]] = field(default_factory=list)  # (time, unanswered bytes)
    sent_bytes: int = 0
    send_seconds: float = 0.0  # time connections spent sending (and waiting for room)
    fatal: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.account.name

    def count(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.result.counts[key] += amount

    def advanced(self, count: int, nbytes: int) -> None:
        if count or nbytes:
            self.emit(TaskAdvanced("push", self.name, count, nbytes))

    def fail(self, line: str) -> None:
        with self.lock:
            self.result.fail(line)

    def sent(self, nbytes: int, seconds: float) -> None:
        """Count bytes written to the target and the time it took, for the link's rate."""
        with self.lock:
            self.sent_bytes += nbytes
            self.send_seconds += seconds

    def lost_connection(self, unanswered: int) -> None:
        """A connection died with `unanswered` bytes sent: remember when and how much."""
        with self.lock:
            self.losses.append((time.time(), unanswered))

    def settled_after(self) -> float:
        """When what lost connections had sent should have reached the server: twice the
        time it takes at the rate a connection of this push sends (at least MIN_RATE), and
        never less than SERVER_GRACE after the loss (a proxy on the way may still be
        sending). The rate counts only time spent sending, never time spent waiting (for
        this very settling, a backoff, the next chunk), or every wait would lengthen the
        next. A loss with nothing sent whole and unanswered needs no wait at all."""
        with self.lock:
            busy = self.send_seconds
            rate = max(self.sent_bytes / busy if busy > 0 else 0.0, MIN_RATE)
            return max((when + min(max(SERVER_GRACE, 2 * unanswered / rate), MAX_GRACE)
                        for when, unanswered in self.losses if unanswered > 0), default=0.0)

    def give_up(self, exc: BaseException) -> None:
        """A worker hit an error that ends the whole push; the others stop too."""
        with self.lock:
            if self.fatal is None:
                self.fatal = exc
        self.stop.set()
