"""POP3 pull logic that needs no server: what to fetch again, and how a locked maildrop is
retried (the session factory is replaced; the real thing is in tests/integration)."""

from __future__ import annotations

import pytest

from migrator import config
from migrator.engine.events import discard
from migrator.engine.pop3 import pull as pop3_pull
from migrator.engine.pop3.delete import size_matches
from migrator.engine.pop3.pull import Pop3Pull, select_fetches
from migrator.engine.results import JobResult
from migrator.errors import ExitStatus
from migrator.retry import RetryPolicy
from migrator.sources.pop3 import MaildropBusyError, MaildropEntry, MaildropInUse


@pytest.mark.parametrize(("listed", "stored", "same"), [
    (100, 100, True), (100, 102, True),  # the server added CRLF to a last line without one
    (100, 101, True), (100, 99, False), (100, 103, False), (100, 200, False),
])
def test_size_matches(listed: int, stored: int, same: bool) -> None:
    assert size_matches(listed, stored) is same


def test_select_fetches_new_and_resized_uidls() -> None:
    listing = [MaildropEntry(1, 10, "a"), MaildropEntry(2, 20, "b"), MaildropEntry(3, 30, "c"),
               MaildropEntry(4, 42, "d")]
    known = {"a": [10], "b": [99], "d": [40, 44]}
    new, suspects = select_fetches(listing, known)
    assert [item.uidl for item in new] == ["c"]
    assert [item.uidl for item in suspects] == ["b"]


def account(tmp_path):
    settings = config.parse({"archive": {"path": str(tmp_path)}, "accounts": {"bob": {"source": {
        "kind": "pop3", "host": "pop.example.org", "username": "bob",
        "password": "env:UNUSED"}}}}, tmp_path / "migrator.toml")
    return settings.account("bob")


@pytest.mark.parametrize(("busy", "opens"), [(0, True), (2, True), (3, False), (5, False)])
def test_a_locked_maildrop_is_retried_a_bounded_number_of_times(tmp_path, monkeypatch,
                                                                busy, opens):
    attempts = []

    def connect(endpoint, name):
        attempts.append(name)
        if len(attempts) <= busy:
            raise MaildropInUse("-ERR [IN-USE] Mailbox is locked by another POP3 session.")
        return "session"

    monkeypatch.setattr(pop3_pull.pop3, "connect", connect)
    monkeypatch.setattr(pop3_pull, "IN_USE_RETRY", RetryPolicy(attempts=3, base_delay=0.001))
    pull = Pop3Pull(account(tmp_path), None, None, discard, JobResult("bob", "pull"))
    if opens:
        assert pull._open() == "session"
        assert len(attempts) == busy + 1
    else:
        with pytest.raises(MaildropBusyError) as caught:
            pull._open()
        assert len(attempts) == 3
        assert caught.value.exit_status == ExitStatus.CONNECTION
        assert str(caught.value).startswith("bob: pop.example.org:995: ")
        assert "IN-USE" in str(caught.value) and "try again later" in str(caught.value)
