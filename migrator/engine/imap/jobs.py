"""The units of work of an IMAP pull and the queue the connections take them from.

A `FolderJob` is one folder's sync (its EXAMINE state, whether it re-maps a changed
UIDVALIDITY); its new messages are cut into `Batch`es. Connections take batches from the
`WorkQueue`, preferring the folder they have open; the job is finished when its last batch is
committed, and only then is the folder's sync state recorded.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from migrator.archive.writer import WriteBatch
from migrator.sources.imap import Folder, FolderStatus, ListedMessage


@dataclass
class FolderJob:
    folder: Folder
    folder_id: int
    status: FolderStatus  # as EXAMINE showed it before the listing
    remap: bool = False
    had_failures: bool = False  # open failures from earlier runs: resolve on success
    batches_left: int = 0
    any_failures: bool = False  # a message failed in this run: keep old rows of a re-map
    incomplete: bool = False  # something was not fetched: do not record the sync state
    abandoned: str | None = None  # why the remaining batches are skipped
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_batches(self, count: int) -> None:
        with self.lock:
            self.batches_left += count

    def batch_done(self) -> bool:
        """Count one batch finished; True when it was the last."""
        with self.lock:
            self.batches_left -= 1
            return self.batches_left == 0


@dataclass(frozen=True)
class Received:
    """A message read from the network: what its row records besides the blob."""

    uid: int
    flags: str  # as the manifest stores them (archive.manifest.flags_text)
    internaldate: str | None
    size: int


class Batch:
    """Some UIDs of one folder, fetched with one FETCH (asked again for what is missing)."""

    def __init__(self, job: FolderJob, listed: list[ListedMessage]) -> None:
        self.job = job
        self.received: dict[int, Received] = {}
        self.failed: dict[int, str] = {}
        self.passes = 0  # FETCHes that completed with UIDs still missing
        self.strikes: dict[int, int] = {}  # connections lost while reading this UID
        self.last_error: str | None = None
        self.listed = listed
        self.blobs: WriteBatch[Received] | None = None  # the archive writer's side of it

    @property
    def listed(self) -> list[ListedMessage]:
        return self._listed

    @listed.setter
    def listed(self, value: list[ListedMessage]) -> None:
        self._listed = value
        self.uids = frozenset(message.uid for message in value)

    def missing(self) -> set[int]:
        """UIDs neither received nor given up on."""
        return set(self.uids - self.received.keys() - self.failed.keys())

    def wants(self, uid: int) -> bool:
        return uid in self.uids and uid not in self.received and uid not in self.failed

    def give_up(self, uids: Iterable[int], reason: str) -> None:
        for uid in uids:
            self.failed[uid] = reason


class WorkQueue:
    """Batches waiting for a connection; `close()` once no more will come."""

    def __init__(self) -> None:
        self._batches: deque[Batch] = deque()
        self._closed = False
        self._stopped = False
        self._changed = threading.Condition()

    def put(self, batches: Iterable[Batch]) -> None:
        with self._changed:
            self._batches.extend(batches)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def stop(self) -> None:
        """Hand out nothing more (a fatal error or an interrupt)."""
        with self._changed:
            self._stopped = True
            self._batches.clear()
            self._changed.notify_all()

    def next_folder(self) -> int | None:
        """The folder of the batch next in line (None: none is waiting)."""
        with self._changed:
            return self._batches[0].job.folder_id if self._batches else None

    def take(self, folder_id: int | None, wait: bool) -> Batch | None:
        """The next batch of `folder_id` if any; any batch when `wait` (a connection with
        nothing in flight may switch folders); None when there is nothing (more) to do."""
        with self._changed:
            while True:
                if self._stopped:
                    return None
                for batch in self._batches:
                    if batch.job.folder_id == folder_id:
                        self._batches.remove(batch)
                        return batch
                if not wait:
                    return None
                if self._batches:
                    return self._batches.popleft()
                if self._closed:
                    return None
                self._changed.wait()

    def drain(self) -> list[Batch]:
        """Whatever is left (after every connection has gone)."""
        with self._changed:
            left = list(self._batches)
            self._batches.clear()
            return left
