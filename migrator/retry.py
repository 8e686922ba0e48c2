"""The one retry helper: every reconnect and backoff loop of migrator goes through it.

What is retried is explicit (the RetryableError family, unless a caller names others, such
as ConnectError while reconnecting); tries are limited; the wait grows with each failure in
a row, honours the server's hint (`Throttled.retry_after`) and carries jitter, so
connections that failed together do not all come back in the same instant; and a wait ends
at once when the run is stopping, so no loop sleeps out a backoff nobody is waiting for.

`retry()` runs one operation until it works. `Backoff` is the same machinery kept by a
caller whose retried work is not one call (a fetcher re-sends what its batches still miss, a
push worker puts an APPEND back in its queue) or whose limit spans calls (connections lost in
a row, the count reset by progress).

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
from typing import Protocol, TypeVar

from migrator.errors import RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")

_BACKOFF = re.compile(r"Suggested Backoff Time:\s*(\d+)\s*milliseconds", re.IGNORECASE)
_SHOWN_WAIT = 0.05  # shorter waits are logged as none


def throttle_backoff(text: str) -> float | None:
    """Seconds the server suggests waiting, if `text` is a throttling reply."""
    match = _BACKOFF.search(text)
    return int(match.group(1)) / 1000.0 if match else None


class Stop(Protocol):
    """What a stop signal offers (`threading.Event` does)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long: `attempts` tries in all, the first one included."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 330.0
    jitter: float = 0.25  # fraction of the delay added at random
    linear: bool = False  # grow by base_delay per failure instead of doubling
    max_hint: float = 330.0  # a server's suggested wait is honoured up to this

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def delay(self, failures: int, hint: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failure in a row; the hint wins if given."""
        if hint is not None:
            base = min(max(hint, 0.0), self.max_hint)
        else:
            steps = max(failures, 1)
            grown = steps if self.linear else 2 ** (steps - 1)
            base = min(self.base_delay * grown, self.max_delay)
        return base + random.uniform(0, base * self.jitter)


def wait_unless_stopped(seconds: float, stop: Stop | None = None,
                        sleep: Callable[[float], None] | None = None) -> bool:
    """Wait `seconds`; False, at once, if `stop` is set before or while waiting.

    `sleep` replaces the wait in tests (it cannot be woken; `stop` is looked at after it).
    """
    if stop is not None and stop.is_set():
        return False
    if sleep is not None:
        sleep(seconds)
        return stop is None or not stop.is_set()
    if stop is not None:
        return not stop.wait(seconds)
    time.sleep(seconds)
    return True


class Backoff:
    """Failures in a row and the waits between them, for one loop (not shared by threads).

    `exhausted(error)` makes the error raised once the limit is spent (e.g. a ConnectError
    saying the connection is lost for good); without it the last error itself is raised.
    The log line reads `{what} ({error}); {then} in 1.2s [failure 2 of 5]`.
    """

    def __init__(self, policy: RetryPolicy = RetryPolicy(), *, stop: Stop | None = None,
                 sleep: Callable[[float], None] | None = None,
                 exhausted: Callable[[BaseException], BaseException] | None = None,
                 what: str = "operation", then: str = "retrying",
                 level: int = logging.INFO) -> None:
        self.policy = policy
        self.stop = stop
        self.sleep = sleep
        self.exhausted = exhausted
        self.what = what
        self.then = then
        self.level = level
        self.failures = 0

    def reset(self) -> None:
        """Progress was made: the next failure is the first in a row again."""
        self.failures = 0

    def count(self, error: BaseException) -> None:
        """One more failure; once the policy's attempts are spent, raise."""
        self.failures += 1
        if self.failures < self.policy.attempts:
            return
        if self.exhausted is None:
            raise error
        raise self.exhausted(error) from error

    def wait(self, error: BaseException | None = None, *, policy: RetryPolicy | None = None,
             then: str | None = None) -> bool:
        """Wait before the next try (as `policy` says, the backoff's own by default, or as
        long as the server asked in `error`); False if the run is stopping."""
        seconds = (policy or self.policy).delay(self.failures,
                                                getattr(error, "retry_after", None))
        if error is not None:
            when = f" in {seconds:.1f}s" if seconds >= _SHOWN_WAIT else ""
            log.log(self.level, "%s (%s); %s%s [failure %d of %d]", self.what,
                    str(error) or error.__class__.__name__, then or self.then, when,
                    self.failures, self.policy.attempts - 1)
        return wait_unless_stopped(seconds, self.stop, self.sleep)

    def failed(self, error: BaseException, *, policy: RetryPolicy | None = None) -> None:
        """`count` the error, then `wait`; if the run is stopping, raise the error at once."""
        self.count(error)
        if not self.wait(error, policy=policy):
            raise error

    def run(self, operation: Callable[[], T], *,
            retryable: tuple[type[BaseException], ...] = (RetryableError,),
            on_error: Callable[[BaseException, int], None] | None = None) -> T:
        """Run `operation` until it works: after a retryable error `failed`, then
        `on_error(error, failures)` (e.g. reconnect with a fresh token), then again.

        Bounded: every pass counts a failure, and `count` raises once they are spent.
        """
        while True:
            try:
                return operation()
            except retryable as error:
                self.failed(error)
                if on_error is not None:
                    on_error(error, self.failures)


def retry(operation: Callable[[], T], *, policy: RetryPolicy = RetryPolicy(),
          retryable: tuple[type[BaseException], ...] = (RetryableError,),
          on_error: Callable[[BaseException, int], None] | None = None,
          stop: Stop | None = None, sleep: Callable[[float], None] | None = None,
          exhausted: Callable[[BaseException], BaseException] | None = None,
          what: str = "operation", then: str = "retrying", level: int = logging.INFO) -> T:
    """Run `operation`; on a retryable error wait, call `on_error` (e.g. reconnect), retry.

    Errors not in `retryable` pass straight through. After `policy.attempts` tries the last
    error is raised (as `exhausted(error)` if given); when `stop` is set, at once.
    """
    backoff = Backoff(policy, stop=stop, sleep=sleep, exhausted=exhausted, what=what,
                      then=then, level=level)
    return backoff.run(operation, retryable=retryable, on_error=on_error)
