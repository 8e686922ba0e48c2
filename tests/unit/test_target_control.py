"""The target's control connection retries through the shared helper: a failed reconnect is
retried like the session it replaces, a failed first connect is not, and a stop ends a wait.

The seam is `imapconn.connect` (what a connection attempt gives); everything above it is the
real TargetControl.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from migrator.config import Endpoint
from migrator.errors import AuthError, ConnectError, ConnectionLost, Throttled
from migrator.retry import RetryPolicy
from migrator.targets import control as control_module
from migrator.targets.control import TargetControl

ENDPOINT = Endpoint(kind="imap", host="127.0.0.1", port=1)


class Session:
    """A connection as TargetControl uses it: a settable attribute and LOGOUT."""

    normalise_times = True

    def logout(self) -> None:
        pass


def connects(monkeypatch, *outcomes: Exception | None) -> list[int]:
    """`imapconn.connect` gives a Session, or raises, in the order given; returns a counter."""
    calls: list[int] = []
    left = list(outcomes)

    def connect(*args: object, **kwargs: object) -> Session:
        calls.append(1)
        outcome = left.pop(0) if left else None
        if outcome is not None:
            raise outcome
        return Session()

    monkeypatch.setattr(control_module.imapconn, "connect", connect)
    return calls


def failing(*errors: Exception) -> Callable[[object], str]:
    left = list(errors)

    def operation(client: object) -> str:
        if left:
            raise left.pop(0)
        return "ok"

    return operation


def quick() -> TargetControl:
    waits: list[float] = []
    return TargetControl(ENDPOINT, "bob", policy=RetryPolicy(attempts=4, base_delay=0.1),
                         sleep=waits.append)


def test_a_failed_reconnect_is_retried_like_the_session_it_replaces(monkeypatch):
    calls = connects(monkeypatch, None, ConnectError("connection lost during login: EOF"))
    control = quick()
    assert control.run("SELECT INBOX", failing(ConnectionLost("BYE"))) == "ok"
    assert len(calls) == 3 and control.reconnects == 2


@pytest.mark.parametrize("error", [ConnectError("cannot connect: refused"),
                                   AuthError("login refused")])
def test_a_failed_first_connect_is_final(monkeypatch, error):
    calls = connects(monkeypatch, error)
    with pytest.raises(type(error)):
        quick().run("LIST", failing())
    assert len(calls) == 1


def test_a_refused_login_on_reconnect_is_final(monkeypatch):
    calls = connects(monkeypatch, None, AuthError("login refused"))
    with pytest.raises(AuthError):
        quick().run("LIST", failing(ConnectionLost("BYE")))
    assert len(calls) == 2


def test_stop_ends_a_throttled_wait_at_once(monkeypatch):
    """The server asks for five minutes; the run stops; the wait ends then, not later."""
    connects(monkeypatch)
    stop, throttled = threading.Event(), threading.Event()
    control = TargetControl(ENDPOINT, "bob", stop=stop)
    raised: list[BaseException] = []

    def operation(client: object) -> str:
        throttled.set()
        raise Throttled("Request is throttled. Suggested Backoff Time: 300000 milliseconds",
                        300.0)

    def run() -> None:
        try:
            control.run("SELECT INBOX", operation)
        except Throttled as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert throttled.wait(30)
    stop.set()
    thread.join(timeout=60)  # a bound for a broken helper, far below the 300 s it would wait
    assert not thread.is_alive() and len(raised) == 1
