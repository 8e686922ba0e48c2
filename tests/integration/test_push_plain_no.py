"""A target that answers one APPEND with a plain tagged NO (no response code), as Cyrus once
did under load ("NO System I/O error"): nothing was stored, so the push sends that message
once more in the same run; a second plain NO for it, or a NO with a response code, is
recorded failed as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migrator.engine.push import second_try
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    fill_archive,
    message,
    placeholder_source,
    push_states,
    write_world_config,
)
from tests.world.configs import Endpoint
from tests.world.proxy import Rewrite

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]

UNLUCKY = b"<2@push.example>"
_TAGGED_NO = re.compile(rb"^(\S+ NO )(.*)$", re.S)


class EmptyAppends:
    """The first `times` APPENDs of the message with Message-ID UNLUCKY reach the server
    with an empty literal: Dovecot answers a plain tagged NO and stores nothing. With
    `code`, the proxy puts that response code into each such NO."""

    def __init__(self, times: int, code: bytes = b"", unlucky: bytes = UNLUCKY) -> None:
        self.times = times
        self.code = code
        self.unlucky = unlucky  # b"": every message
        self.emptied = 0
        self.replies: list[bytes] = []  # the tagged NOs the client saw

    def __call__(self) -> Rewrite:
        outer = self

        class Empty(Rewrite):
            def client_literal(self, command: str, data: bytes) -> bytes:
                if (command != "APPEND" or outer.unlucky not in data
                        or outer.emptied >= outer.times):
                    return data
                outer.emptied += 1
                return b""

            def server(self, unit: bytes) -> bytes:
                match = _TAGGED_NO.match(unit)
                if match is None:
                    return unit
                unit = match[1] + outer.code + match[2]
                outer.replies.append(unit)
                return unit

        return Empty()


def world(source_server, fault_proxy, empty: EmptyAppends, tmp_path: Path) -> Path:
    """Five messages archived for bob; carol's INBOX on the Dovecot behind `empty`."""
    source_server.add_user("carol", SOURCE_PASSWORD)
    fill_archive(tmp_path / "archive", [message(n) for n in range(5)])
    proxy = fault_proxy(source_server.imap_port, rewrite=empty)
    target = Endpoint("imap", port=proxy.port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", connections=1)
    return write_world_config(tmp_path, placeholder_source(), target)


@pytest.mark.parametrize(("times", "code"), [(1, b""), (2, b""), (2, b"[SERVERBUG] ")])
def test_a_plain_no_to_an_append_is_sent_once_more(source_server, fault_proxy, tmp_path,
                                                   times, code):
    empty = EmptyAppends(times, code)
    config = world(source_server, fault_proxy, empty, tmp_path)

    result = run_cli("-c", config, "push", "bob")

    tries = 1 if code else times  # a NO with a response code is not tried again
    assert empty.emptied == tries and len(empty.replies) == tries, empty.replies
    assert ("sending it once more" in result.stderr) == (not code)
    stored = [m.raw for m in source_server.list_messages("carol", "INBOX")]
    unlucky = [raw for raw in stored if UNLUCKY in raw]
    if times == 1:  # the second try went through: there exactly once, the run is clean
        assert result.status == ExitStatus.OK, result.stderr
        assert len(stored) == 5 and len(unlucky) == 1
        assert push_states(tmp_path / "archive") == {"done": 5}
        assert run_cli("-c", config, "verify", "bob").status == ExitStatus.OK
        return
    assert result.status == ExitStatus.PARTIAL, result.stderr  # refused for good: failed
    assert len(stored) == 4 and unlucky == []
    assert push_states(tmp_path / "archive") == {"done": 4, "failed": 1}
    assert run_cli("-c", config, "verify", "bob").status == ExitStatus.VERIFY


def test_a_target_that_always_says_plain_no_gets_a_bounded_number_of_second_tries(
        source_server, fault_proxy, tmp_path, monkeypatch):
    """Not one wait per message: after MAX_SECOND_TRIES (here 2) the rest fail at once."""
    monkeypatch.setattr(second_try, "MAX_SECOND_TRIES", 2)
    empty = EmptyAppends(times=1000, unlucky=b"")
    config = world(source_server, fault_proxy, empty, tmp_path)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.PARTIAL, result.stderr
    assert empty.emptied == 5 + 2, empty.replies  # each message once, two of them twice
    assert result.stderr.count("sending it once more") == 2
    assert "no more second tries in this run" in result.stderr
    assert push_states(tmp_path / "archive") == {"failed": 5}
    assert source_server.list_messages("carol", "INBOX") == []
