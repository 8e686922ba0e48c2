"""The push's queue of chunks, handed out so that connections keep to folders of their own.

A server serializes the APPENDs into one folder (Dovecot's Maildir takes the folder's lock for
each, and a process waiting for it sleeps on an inotify watch whose teardown costs more than
the APPEND), and a connection that changes folder SELECTs the new one first. So a worker
gets, of the chunks waiting: one of the folder it is on; else one of a folder no other
worker is on; else the oldest. The feeder puts a page's folders' chunks in turn, so the
waiting chunks hold several folders when the page does.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migrator.engine.push.worker import Chunk


class ChunkQueue:
    """`queue.Queue` of chunks (None: no more) with `get` choosing by the worker's folder."""

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
        """Raises queue.Empty when nothing came within `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._items, timeout):
                raise queue.Empty
            return self._take(worker)

    def get_nowait(self, worker: int) -> Chunk | None:
        return self.get(worker, timeout=0)

    def _take(self, worker: int) -> Chunk | None:
        chunks = [item for item in self._items if item is not None]
        if not chunks:  # only the ends are left
            return self._remove(self._items[0])
        mine = self._on.get(worker)
        taken = {folder for other, folder in self._on.items() if other != worker}
        chosen = (next((c for c in chunks if c.folder == mine), None)
                  or next((c for c in chunks if c.folder not in taken), None)
                  or chunks[0])
        self._on[worker] = chosen.folder
        return self._remove(chosen)

    def _remove(self, item: Chunk | None) -> Chunk | None:
        del self._items[next(i for i, queued in enumerate(self._items) if queued is item)]
        self._changed.notify_all()
        return item
