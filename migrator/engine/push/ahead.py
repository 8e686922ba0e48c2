"""A push worker's next chunk, its intents committed while the current chunk is sent.

An intent must be durable before its APPEND goes out. Committing a chunk's intents (with
the outcomes collected so far) used to stop the worker's sending for the length of a
transaction, and on a busy manifest (in `migrate` the pull's batches, the search index and
the other connections write too) that was a quarter of a worker's time. A worker now takes
the next chunk as it starts sending the current one and commits the next one's intents in a
thread of its own, so they are usually durable by the time the current chunk is out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from migrator.targets.append_items import AppendItem

log = logging.getLogger(__name__)


class ChunkAhead:
    """At most one chunk at a time: its items, and the commit of their intents."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._next: Future[list[AppendItem]] | None = None

    @property
    def holding(self) -> bool:
        return self._next is not None

    def start(self, items: list[AppendItem], commit: Callable[[], None]) -> None:
        """Commit in the background; `take` hands the items over once it has worked."""
        assert self._next is None, "one chunk ahead at most"

        def committed() -> list[AppendItem]:
            commit()
            return items

        self._next = self._pool.submit(committed)

    def take(self) -> list[AppendItem]:
        """The held chunk's items, once their intents are committed (or what the commit
        raised: a full disk, a broken manifest)."""
        assert self._next is not None
        future, self._next = self._next, None
        return future.result()

    def close(self) -> None:
        """Wait for a commit still running (a worker that failed meanwhile), then stop."""
        if self._next is not None:
            wait([self._next])
            if self._next.exception() is not None:
                log.debug("a chunk's intents could not be committed: %s", self._next.exception())
            self._next = None
        self._pool.shutdown(wait=True)
