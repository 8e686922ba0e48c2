"""One retry helper: explicit retryable errors, a limit, backoff honouring the server's hint.

Exchange throttles with `Request is throttled. Suggested Backoff Time: N milliseconds`
(tagged BAD for most commands, NO for APPEND): match the text, not the status.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from migrator.errors import RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")

_BACKOFF = re.compile(r"Suggested Backoff Time:\s*(\d+)\s*milliseconds", re.IGNORECASE)


def throttle_backoff(text: str) -> float | None:
    """Seconds the server suggests waiting, if `text` is a throttling reply."""
    match = _BACKOFF.search(text)
    return int(match.group(1)) / 1000.0 if match else None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 330.0
    jitter: float = 0.25  # fraction of the delay added at random

    def delay(self, attempt: int, hint: float | None) -> float:
        base = hint if hint is not None else self.base_delay * (2 ** (attempt - 1))
        base = min(base, self.max_delay)
        return base + random.uniform(0, base * self.jitter)


def retry(operation: Callable[[], T], *, policy: RetryPolicy = RetryPolicy(),
          retryable: tuple[type[BaseException], ...] = (RetryableError,),
          on_error: Callable[[BaseException, int], None] | None = None,
          sleep: Callable[[float], None] = time.sleep, what: str = "operation") -> T:
    """Run `operation`; on a retryable error wait, call `on_error` (e.g. reconnect), retry."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except retryable as exc:
            if attempt == policy.attempts:
                raise
            wait = policy.delay(attempt, getattr(exc, "retry_after", None))
            log.info("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt,
                     policy.attempts - 1, wait)
            sleep(wait)
            if on_error is not None:
                on_error(exc, attempt)
    raise AssertionError("unreachable")  # the loop returns or raises
