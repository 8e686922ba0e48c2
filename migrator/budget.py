"""The one memory budget: bytes read from a source but not yet written stay bounded.

A reader reserves a message's size (the IMAP fetcher before reading its literal, the archive
writer for a POP3 reply already read) and the archive writer releases it once the blob is on
disk, so read-but-unwritten data never exceeds the budget. A message larger than the whole
budget is let through alone, when nothing else is held. Waiters are served in order, so a
large message is not starved by a stream of small ones. Push uses `release_large_buffers`;
pull and push `freeze_startup_objects`.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import sys
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

    def try_reserve(self, size: int) -> bool:
        """Reserve `size` bytes if that needs no waiting (nobody queued, and they fit)."""
        with self._changed:
            if self._queue or not (self.used == 0 or self.used + size <= self.limit):
                return False
            self.used += size
            self.peak = max(self.peak, self.used)
            return True

    def release(self, size: int) -> None:
        with self._changed:
            self.used = max(0, self.used - size)
            self._changed.notify_all()


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD = 256 * 1024


def release_large_buffers() -> None:
    """Have glibc give message-sized buffers back to the OS when they are freed.

    glibc raises its mmap threshold to the size of the largest block freed so far (up to
    32 MB): after one 30 MB message every smaller body is carved from per-thread heaps that
    are never trimmed, and the process keeps 100 MB more than it uses. A fixed threshold
    turns that adaptation off; bodies above it are mmapped and unmapped. Not glibc: no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


_frozen = threading.Event()


def freeze_startup_objects() -> None:
    """Keep what exists when a job starts (modules, SQLAlchemy's tables and cached statements,
    the config) out of the garbage collector's sweeps, once per process.

    Each full collection walked all of them again, though none ever becomes garbage: 0.09 of
    a migrate's 7 CPU s for 3,000 messages went to collecting. Only the first call freezes:
    objects frozen later could become cyclic garbage that is never collected.
    """
    if not _frozen.is_set():
        _frozen.set()
        gc.freeze()
