"""A push worker's waits after trouble, through the shared retry helper: each kind of trouble
waits as it did before the helper, the limit spans sessions and resets when an APPEND is
done, and a throttled APPEND gives up after its own limit.

The worker is real; only the helper's wait is replaced (it records, nothing waits), and
jitter is pinned at its low end so the schedule can be read exactly.
"""

from __future__ import annotations

import queue
from collections import deque

import pytest

from migrator import retry as retry_module
from migrator.config import Account, Endpoint
from migrator.engine.push.context import Parallelism, PushContext
from migrator.engine.push.rows import FAILED
from migrator.engine.push.worker import (
    MAX_FAILED_CONNECTS,
    MAX_THROTTLES_PER_MESSAGE,
    PushWorker,
)
from migrator.engine.results import JobResult
from migrator.errors import ConnectError, ConnectionLost, Throttled, TokenExpired
from migrator.targets.append_items import AppendItem, AppendOutcome

ENDPOINT = Endpoint(kind="office365", host="127.0.0.1", port=1, connections=4)


@pytest.fixture(autouse=True)
def _no_jitter(monkeypatch):
    monkeypatch.setattr(retry_module.random, "uniform", lambda low, high: low)


def worker() -> tuple[PushWorker, list[object]]:
    notices: list[object] = []
    ctx = PushContext(Account("bob", ENDPOINT, ENDPOINT), ENDPOINT,
                      None, None,  # type: ignore[arg-type]  # no manifest, no archive needed
                      notices.append, JobResult("bob", "push"), "target", None)
    ctx.parallelism = Parallelism(ENDPOINT.connections, notices.append, "bob")
    return PushWorker(ctx, 0, queue.Queue()), notices


@pytest.mark.parametrize("error, expected", [
    (ConnectionLost("reset"), [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]),
    (Throttled("User is authenticated but not connected.", None),
     [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]),
    (Throttled("Suggested Backoff Time: 1500 milliseconds", 1.5), [1.5] * 8),
    (TokenExpired("Session invalidated - AccessTokenExpired"), [0.0] * 8),
])
def test_each_kind_of_trouble_waits_as_before(waits, error, expected):
    pushing, _ = worker()
    for _ in expected:
        pushing._back_off(error)
    assert waits == pytest.approx(expected)


def test_an_expired_token_asks_for_a_fresh_one_and_an_unwanted_session_for_fewer(waits):
    pushing, notices = worker()
    pushing._back_off(TokenExpired("AccessTokenExpired"))
    assert pushing.refresh
    pushing._back_off(Throttled("User is authenticated but not connected.", None))
    assert pushing.ctx.parallelism is not None and pushing.ctx.parallelism.limit == 3
    assert len(notices) == 1


def test_too_many_sessions_lost_in_a_row_end_the_push_and_a_done_append_resets_the_count(
        waits):
    pushing, _ = worker()
    in_a_row = MAX_FAILED_CONNECTS * 3
    for _ in range(in_a_row):
        pushing._back_off(ConnectionLost("reset"))
    done = AppendOutcome(AppendItem(1, "INBOX", (), None, 10), "done", uid=7, uidvalidity=1)
    pushing._outcome(done, deque())
    for _ in range(in_a_row):
        pushing._back_off(ConnectionLost("reset"))
    with pytest.raises(ConnectError, match="keeps failing: reset"):
        pushing._back_off(ConnectionLost("reset"))
    assert len(waits) == 2 * in_a_row


def test_a_throttled_append_goes_again_until_its_own_limit(waits):
    pushing, _ = worker()
    pending: deque[AppendItem] = deque()
    item = AppendItem(5, "INBOX", (), None, 10)
    throttled = AppendOutcome(item, "throttled", text="Request is throttled.", retry_after=None)
    for _ in range(MAX_THROTTLES_PER_MESSAGE):
        pushing._throttled(throttled, pending)
    assert len(pending) == MAX_THROTTLES_PER_MESSAGE and not pushing.outcomes
    pushing._throttled(throttled, pending)
    assert [(o.state, o.note) for o in pushing.outcomes] == [
        (FAILED, "throttled too often: Request is throttled.")]
    assert waits[:7] == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])
    assert len(waits) == MAX_THROTTLES_PER_MESSAGE

