"""A byte budget shared by readers and writers: memory stays bounded whatever the mailbox.

A reader reserves a message's size before reading its literal and the writer releases it once
the blob is on disk, so fetched-but-unwritten data never exceeds the budget. A message larger
than the whole budget is let through alone, when nothing else is held. Waiters are served in
order, so a large message is not starved by a stream of small ones.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._tickets = itertools.count()
        self._queue: deque[int] = deque()
        self._changed = threading.Condition()

    def reserve(self, size: int) -> None:
        """Wait for my turn and until `size` more bytes fit (or nothing is held)."""
        with self._changed:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            self._changed.wait_for(lambda: self._queue[0] == ticket and (
                self.used == 0 or self.used + size <= self.limit))
            self._queue.popleft()
            self.used += size
            self.peak = max(self.peak, self.used)
            self._changed.notify_all()

    def release(self, size: int) -> None:
        with self._changed:
            self.used = max(0, self.used - size)
            self._changed.notify_all()
