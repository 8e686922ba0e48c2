"""The push's queue of chunks, handed out so that connections keep to folders of their own.

A server serializes the APPENDs into one folder (Dovecot's Maildir takes the folder's lock for
each, and a process waiting for it sleeps on an inotify watch whose teardown costs more than
the APPEND), and a connection that changes folder SELECTs the new one first. So a worker
gets, of the chunks waiting: one of the folder it is on; else one of a folder no other
worker is on; else the oldest of a folder fewer than `PER_FOLDER` others are on; else it
waits. The feeder puts a page's folders' chunks in turn, so the waiting chunks hold several
folders when the page does.

Why at most two connections per folder: into one Dovecot folder, 2,000 APPENDs took the
target 2.1 CPU s on one connection, 2.3-2.6 on two and 2.7 on four, and four were no faster
than one or two (1,050 against 990-1,240 messages/s). In `migrate`, where the pull feeds
one folder at a time and everything shares two cores, four connections piled into that
folder; with two per folder, migrates of the bench mailbox were 6-7% faster at 25 ms and
about as fast at 0 ms (-3% and +1%), and the machine mostly spent less CPU (README, migrate).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migrator.engine.push.worker import Chunk


PER_FOLDER = 2  # connections appending into one folder at once


class ChunkQueue:
    """`queue.Queue` of chunks (None: no more) with `get` choosing by the worker's folder.

    A worker stays "on" the folder of the chunk it took last until it takes another or
    `leave`s (it must, when it stops taking chunks, or its folder stays counted as worked)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Chunk | None] = deque()
        self._on: dict[int, str] = {}  # worker -> folder of the chunk it took last
        self._changed = threading.Condition()

    def put(self, chunk: Chunk | None, timeout: float | None = None) -> None:
        """Raises queue.Full when no room came within `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._items) < self.maxsize, timeout):
                raise queue.Full
            self._items.append(chunk)
            self._changed.notify_all()

    def get(self, worker: int, timeout: float | None = None) -> Chunk | None:
        """Raises queue.Empty when nothing this worker may take came within `timeout`
        seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._choice(worker) is not None, timeout):
                raise queue.Empty
            choice = self._choice(worker)
            assert choice is not None  # what wait_for saw, under the same lock
            (chosen,) = choice
            if chosen is not None:
                self._on[worker] = chosen.folder
            return self._remove(chosen)

    def get_nowait(self, worker: int) -> Chunk | None:
        return self.get(worker, timeout=0)

    def leave(self, worker: int) -> None:
        """The worker takes no more chunks: its folder is free for the others."""
        with self._changed:
            self._on.pop(worker, None)
            self._changed.notify_all()

    def _choice(self, worker: int) -> tuple[Chunk | None] | None:
        """What `worker` would take now: (a chunk,), (None,) (an end: no chunk is left), or
        None (it must wait)."""
        if not self._items:
            return None
        chunks = [item for item in self._items if item is not None]
        if not chunks:  # only the ends are left
            return (self._items[0],)
        mine = self._on.get(worker)
        others = Counter(folder for other, folder in self._on.items() if other != worker)
        chosen = next((c for c in chunks if c.folder == mine), None) or next(
            (c for c in chunks if not others[c.folder]), None) or next(
            (c for c in chunks if others[c.folder] < PER_FOLDER), None)
        return None if chosen is None else (chosen,)

    def _remove(self, item: Chunk | None) -> Chunk | None:
        del self._items[next(i for i, queued in enumerate(self._items) if queued is item)]
        self._changed.notify_all()
        return item
