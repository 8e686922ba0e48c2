"""The IMAP pull's planning connection reconnects through the shared helper: after the
backoff, with a fresh token after AccessTokenExpired, a failed connect tried again, a
refused login final, and a limit that ends in one clear ConnectError.

The seam is `PullContext.connect` (what one connection attempt gives); the helper's wait is
replaced by a recorder, so nothing really waits.
"""

from __future__ import annotations

import pytest

from migrator.config import Account, Endpoint
from migrator.engine.imap.context import RECONNECTS, PullContext
from migrator.engine.imap.pull import PlanningConnection
from migrator.engine.results import JobResult
from migrator.errors import AuthError, ConnectError, ConnectionLost, Throttled, TokenExpired

ENDPOINT = Endpoint(kind="imap", host="127.0.0.1", port=1)


class Source:
    """A source connection as the planner holds it: closed when replaced."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def planner(monkeypatch, *connects: Exception | None) -> tuple[PlanningConnection, list[bool]]:
    """A planner whose reconnects give a Source or raise, in the order given; the list
    records each connect's force_refresh."""
    ctx = PullContext(Account("bob", ENDPOINT), None, None,  # type: ignore[arg-type]
                      lambda event: None, JobResult("bob", "pull"))
    left, refreshes = list(connects), []

    def connect(force_refresh: bool = False) -> Source:
        refreshes.append(force_refresh)
        outcome = left.pop(0) if left else None
        if outcome is not None:
            raise outcome
        return Source(f"connection {len(refreshes)}")

    monkeypatch.setattr(ctx, "connect", connect)
    return PlanningConnection(ctx, Source("first")), refreshes  # type: ignore[arg-type]


def failing(*errors: Exception):
    left = list(errors)

    def operation() -> str:
        if left:
            raise left.pop(0)
        return "planned"

    return operation


def test_a_failed_reconnect_is_tried_again(monkeypatch, waits):
    plan, refreshes = planner(monkeypatch, ConnectError("connection lost during login: EOF"))
    first = plan.source
    assert plan.retrying(failing(ConnectionLost("BYE"))) == "planned"
    assert first.closed and refreshes == [False, False]
    assert waits == pytest.approx([0.2, 0.2])  # the backoff, then the failed connect's


def test_an_expired_token_reconnects_with_a_fresh_one_and_a_hint_is_waited(
        monkeypatch, waits):
    plan, refreshes = planner(monkeypatch)
    operation = failing(TokenExpired("AccessTokenExpired"), Throttled("slow down", 1.5))
    assert plan.retrying(operation) == "planned"
    assert refreshes == [True, False] and waits == pytest.approx([0.2, 1.5])


def test_a_refused_login_on_reconnect_is_final(monkeypatch, waits):
    plan, refreshes = planner(monkeypatch, AuthError("login refused"))
    with pytest.raises(AuthError):
        plan.retrying(failing(ConnectionLost("BYE")))
    assert refreshes == [False]


def test_the_limit_ends_in_one_clear_connection_error(monkeypatch, waits):
    plan, _ = planner(monkeypatch)
    with pytest.raises(ConnectError, match=r"^bob: connection lost for good: reset$"):
        plan.retrying(failing(*[ConnectionLost("reset")] * 10))
    assert len(waits) == RECONNECTS.attempts - 1
