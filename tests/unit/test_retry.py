"""The one retry helper: limits, the server's hint, jitter, on_error, and a stop that wakes a
wait at once. Waits go to an injected sleep that only records them: nothing really waits."""

from __future__ import annotations

import logging
import threading

import pytest

from migrator import retry as retry_module
from migrator.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    ConnectionLost,
    FolderError,
    MessageError,
    RetryableError,
    Throttled,
    TokenExpired,
)
from migrator.retry import Backoff, RetryPolicy, retry, throttle_backoff, wait_unless_stopped

STEADY = RetryPolicy(attempts=5, base_delay=1.0, max_delay=100.0, jitter=0.0)


class Script:
    """An operation that raises the given errors in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Clock:
    """An injected sleep: records each wait; may set a stop signal the n-th time."""

    def __init__(self, stop: threading.Event | None = None, stop_at: int = 0) -> None:
        self.waits: list[float] = []
        self.stop, self.stop_at = stop, stop_at

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.stop is not None and len(self.waits) == self.stop_at:
            self.stop.set()


# -- the policy's waits ---------------------------------------------------------------------
@pytest.mark.parametrize("policy, failures, hint, expected", [
    (STEADY, 1, None, 1.0),
    (STEADY, 2, None, 2.0),
    (STEADY, 4, None, 8.0),
    (STEADY, 9, None, 100.0),  # capped at max_delay
    (STEADY, 40, None, 100.0),  # no overflow however long the streak
    (STEADY, 0, None, 1.0),  # a wait before any failure counts as after the first
    (STEADY, 3, 0.3, 0.3),  # the server's hint wins over the schedule
    (STEADY, 1, 250.0, 250.0),  # ... even above max_delay
    (STEADY, 1, 9999.0, 330.0),  # ... up to max_hint
    (STEADY, 1, 0.0, 0.0),
    (RetryPolicy(base_delay=2.0, max_delay=60.0, linear=True, jitter=0.0), 3, None, 6.0),
    (RetryPolicy(base_delay=2.0, max_delay=60.0, linear=True, jitter=0.0), 40, None, 60.0),
    (RetryPolicy(base_delay=0.0, jitter=0.0), 5, None, 0.0),
])
def test_delay_follows_the_schedule_and_honours_the_hint(policy, failures, hint, expected):
    assert policy.delay(failures, hint) == pytest.approx(expected)


@pytest.mark.parametrize("failures, hint", [(1, None), (3, None), (9, None), (2, 4.0)])
@pytest.mark.parametrize("jitter", [0.1, 0.25, 1.0])
def test_jitter_stays_within_its_fraction(monkeypatch, failures, hint, jitter):
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0, jitter=jitter)
    base = RetryPolicy(base_delay=1.0, max_delay=100.0, jitter=0.0).delay(failures, hint)
    monkeypatch.setattr(retry_module.random, "uniform", lambda low, high: high)
    assert policy.delay(failures, hint) == pytest.approx(base * (1 + jitter))
    monkeypatch.setattr(retry_module.random, "uniform", lambda low, high: low)
    assert policy.delay(failures, hint) == pytest.approx(base)
    monkeypatch.undo()
    samples = {policy.delay(failures, hint) for _ in range(200)}
    assert all(base <= s <= base * (1 + jitter) for s in samples)
    assert len(samples) > 1  # it does vary


def test_a_policy_without_attempts_is_refused():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize("text, expected", [
    ("Request is throttled. Suggested Backoff Time: 1500 milliseconds", 1.5),
    ("BAD request is THROTTLED. suggested backoff time:  20 milliseconds", 0.02),
    ("NO [CANNOT] nope", None),
])
def test_throttle_backoff_reads_exchanges_words(text, expected):
    assert throttle_backoff(text) == expected


# -- retry(): the limit, the hint, on_error, what passes straight through ---------------------
@pytest.mark.parametrize("attempts", [1, 2, 5])
@pytest.mark.parametrize("error", [ConnectionLost("gone"), TokenExpired("expired"),
                                   Throttled("slow down", None)])
def test_the_limit_raises_the_last_error_after_attempts_tries(attempts, error):
    operation, clock = Script(*[error] * 10), Clock()
    policy = RetryPolicy(attempts=attempts, base_delay=1.0, jitter=0.0)
    with pytest.raises(type(error)) as raised:
        retry(operation, policy=policy, sleep=clock)
    assert raised.value is error
    assert operation.calls == attempts
    assert clock.waits == [2.0 ** n for n in range(attempts - 1)]


def test_exhausted_names_the_error_raised_once_the_limit_is_spent():
    operation = Script(*[ConnectionLost("reset by peer")] * 3)
    with pytest.raises(ConnectError, match="lost for good: reset by peer") as raised:
        retry(operation, policy=RetryPolicy(attempts=3), sleep=Clock(),
              exhausted=lambda e: ConnectError(f"lost for good: {e}"))
    assert isinstance(raised.value.__cause__, ConnectionLost)


@pytest.mark.parametrize("failures", [0, 1, 4])
def test_success_after_failures_returns_the_value(failures):
    operation, clock = Script(*[ConnectionLost("x")] * failures), Clock()
    assert retry(operation, policy=STEADY, sleep=clock) == "done"
    assert operation.calls == failures + 1 and len(clock.waits) == failures


@pytest.mark.parametrize("hints, expected", [
    ([0.25], [0.25]),
    ([7.0, None], [7.0, 2.0]),  # the schedule goes on counting between hints
    ([None, 3.5, 0.0], [1.0, 3.5, 0.0]),
])
def test_the_servers_hint_is_waited(hints, expected):
    operation = Script(*[Throttled("slow down", hint) for hint in hints])
    clock = Clock()
    assert retry(operation, policy=STEADY, sleep=clock) == "done"
    assert clock.waits == expected


@pytest.mark.parametrize("errors", [
    [ConnectionLost("a")],
    [TokenExpired("b"), Throttled("c", 0.5), ConnectionLost("d")],
])
def test_on_error_follows_each_wait_with_the_error_and_its_number(errors):
    calls: list[tuple[BaseException, int, int]] = []
    clock = Clock()
    operation = Script(*errors)
    retry(operation, policy=STEADY, sleep=clock,
          on_error=lambda error, n: calls.append((error, n, len(clock.waits))))
    assert calls == [(error, n, n) for n, error in enumerate(errors, 1)]


def test_on_error_is_not_called_after_the_last_try():
    calls: list[int] = []
    with pytest.raises(ConnectionLost):
        retry(Script(*[ConnectionLost("x")] * 3), policy=RetryPolicy(attempts=3),
              sleep=Clock(), on_error=lambda error, n: calls.append(n))
    assert calls == [1, 2]


@pytest.mark.parametrize("error", [
    ValueError("a bug"), ConfigError("bad key"), AuthError("refused"), ConnectError("no host"),
    FolderError("gone"), MessageError("broken"), KeyboardInterrupt(),
])
def test_what_is_not_retryable_passes_straight_through(error):
    operation, clock, calls = Script(error), Clock(), []
    with pytest.raises(type(error)) as raised:
        retry(operation, policy=STEADY, sleep=clock, on_error=lambda e, n: calls.append(n))
    assert raised.value is error
    assert operation.calls == 1 and clock.waits == [] and calls == []


def test_retryable_can_name_other_errors_and_then_only_those_are_retried():
    operation, clock = Script(ConnectError("refused"), ConnectError("refused")), Clock()
    assert retry(operation, retryable=(ConnectError,), policy=STEADY, sleep=clock) == "done"
    with pytest.raises(ConnectionLost):  # no longer retried: not named
        retry(Script(ConnectionLost("x")), retryable=(ConnectError,), policy=STEADY,
              sleep=clock)


# -- the stop signal ------------------------------------------------------------------------
@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_stop_during_a_wait_raises_the_error_and_tries_no_more(stop_at):
    stop = threading.Event()
    errors = [ConnectionLost(f"lost {n}") for n in range(1, 6)]
    operation, clock, calls = Script(*errors), Clock(stop, stop_at), []
    with pytest.raises(ConnectionLost) as raised:
        retry(operation, policy=STEADY, sleep=clock, stop=stop,
              on_error=lambda e, n: calls.append(n), exhausted=lambda e: AssertionError())
    assert raised.value is errors[stop_at - 1]  # the error itself, not "spent"
    assert operation.calls == stop_at and len(clock.waits) == stop_at
    assert calls == list(range(1, stop_at))  # no reconnect for a run that is stopping


def test_a_stop_already_set_means_no_wait_at_all():
    stop = threading.Event()
    stop.set()
    operation, clock = Script(ConnectionLost("x")), Clock()
    with pytest.raises(ConnectionLost):
        retry(operation, policy=STEADY, sleep=clock, stop=stop)
    assert operation.calls == 1 and clock.waits == []


def test_stop_wakes_a_real_wait_at_once():
    """A backoff of an hour, really waited on the stop signal, ends when stop is set."""
    stop, started = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def operation() -> str:
        started.set()
        raise Throttled("slow down", 3600.0)

    def worker() -> None:
        try:
            retry(operation, policy=RetryPolicy(attempts=3, max_hint=3600.0), stop=stop)
        except Throttled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert started.wait(30)
    stop.set()
    thread.join(timeout=60)  # a bound for a broken helper, far below the hour it would wait
    assert not thread.is_alive() and len(outcome) == 1


@pytest.mark.parametrize("set_before, expected", [(False, True), (True, False)])
def test_wait_unless_stopped_says_whether_it_waited(set_before, expected):
    stop, clock = threading.Event(), Clock()
    if set_before:
        stop.set()
    assert wait_unless_stopped(5.0, stop, clock) is expected
    assert clock.waits == ([] if set_before else [5.0])
    assert wait_unless_stopped(0.0) is True


# -- Backoff: a limit that spans calls, reset by progress ---------------------------------
def test_a_shared_backoff_counts_failures_in_a_row_across_calls_until_reset():
    clock = Clock()
    backoff = Backoff(RetryPolicy(attempts=3, base_delay=1.0, jitter=0.0), sleep=clock,
                      exhausted=lambda e: ConnectError(f"for good: {e}"))
    assert backoff.run(Script(ConnectionLost("a"))) == "done"
    assert backoff.run(Script(ConnectionLost("b"))) == "done"  # the second in a row
    backoff.reset()  # a message came in
    backoff.failed(ConnectionLost("c"))
    backoff.failed(ConnectionLost("d"))
    with pytest.raises(ConnectError, match="for good: e"):
        backoff.failed(ConnectionLost("e"))
    assert clock.waits == [1.0, 2.0, 1.0, 2.0]


def test_wait_may_use_another_schedule_but_the_limit_stays_the_backoffs():
    clock = Clock()
    backoff = Backoff(RetryPolicy(attempts=2, base_delay=1.0, jitter=0.0), sleep=clock)
    backoff.count(ConnectionLost("x"))
    assert backoff.wait(ConnectionLost("x"), policy=RetryPolicy(base_delay=0.0, jitter=0.0))
    with pytest.raises(ConnectionLost):
        backoff.count(ConnectionLost("y"))
    assert clock.waits == [0.0]


def test_each_wait_is_logged_with_the_servers_words(caplog):
    caplog.set_level(logging.INFO, logger="migrator.retry")
    backoff = Backoff(STEADY, sleep=Clock(), what="bob: connection trouble",
                      then="reconnecting")
    backoff.failed(TokenExpired("* BYE Session invalidated - AccessTokenExpired"))
    backoff.failed(ConnectionLost(""))
    assert caplog.messages == [
        "bob: connection trouble (* BYE Session invalidated - AccessTokenExpired); "
        "reconnecting in 1.0s [failure 1 of 4]",
        "bob: connection trouble (ConnectionLost); reconnecting in 2.0s [failure 2 of 4]"]


def test_retryable_family_is_what_retry_catches_by_default():
    assert all(issubclass(cls, RetryableError) for cls in (Throttled, ConnectionLost,
                                                          TokenExpired))
