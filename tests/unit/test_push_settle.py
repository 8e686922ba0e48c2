"""How long a push gives the target to store what lost connections had sent."""

from __future__ import annotations

import pytest

from migrator.engine.push import context
from migrator.engine.push.context import SERVER_GRACE, PushContext
from migrator.engine.results import JobResult


def push_context() -> PushContext:
    return PushContext(account=None, endpoint=None, manifest=None, store=None,
                       emit=lambda event: None, result=JobResult("bob", "push"),
                       target="imap://target", tokens=None)


def test_the_wait_follows_the_sending_rate_not_the_time_spent_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(context.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(context.time, "time", lambda: clock[0])
    ctx = push_context()
    ctx.sent(10_000_000, 10.0)  # 1 MB/s while sending
    ctx.lost_connection(4_000_000)
    first = ctx.settled_after()
    assert first == pytest.approx(1000.0 + 8.0)  # twice 4 MB at 1 MB/s

    clock[0] += 100.0  # the push waited (for this settling, a backoff): nothing was sent
    ctx.lost_connection(4_000_000)

    assert ctx.settled_after() - clock[0] == pytest.approx(8.0)  # not longer than before


def test_a_loss_with_nothing_sent_whole_needs_no_wait() -> None:
    ctx = push_context()
    ctx.sent(1_000_000, 1.0)
    ctx.lost_connection(0)  # a literal cut before its end: the server cannot store it
    assert ctx.settled_after() == 0.0
    ctx.lost_connection(10)
    assert ctx.settled_after() >= SERVER_GRACE
