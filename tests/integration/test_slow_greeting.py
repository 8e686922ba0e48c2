"""A server too busy to greet in time: the first connect is tried again, as a reconnect is,
where a `security` mismatch or a refused connection stays final at once."""

from __future__ import annotations

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    assert_archive_matches,
    imap_client,
    source_config,
)
from tests.world.mailstore import SeedMessage
from tests.world.proxy import FaultProxy, Rewrite


class SilentFirstSession(Rewrite):
    """The first connection gets its TLS handshake but never its greeting."""

    sessions = 0

    def __init__(self) -> None:
        SilentFirstSession.sessions += 1
        self.silent = SilentFirstSession.sessions == 1

    def server(self, unit: bytes) -> bytes:
        return b"" if self.silent else unit


def test_a_first_connect_that_gets_no_greeting_in_time_is_tried_again(
        source_server, certs, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    source_server.add_user("alice")
    source_server.seed("alice", "INBOX", [SeedMessage(
        b"From: a@example.org\r\nSubject: busy %d\r\n\r\nbody %d\r\n" % (n, n), (),
        1_700_000_000 + n) for n in range(3)])
    SilentFirstSession.sessions = 0
    with FaultProxy(source_server.imaps_port, tls_terminate=True, certs=certs,
                    rewrite=SilentFirstSession) as proxy:
        config = source_config(tmp_path, source_server, security="tls", port=proxy.port,
                               extra={"timeout": 2})  # the greeting awaited 2 s, not 10

        result = run_cli("-c", config, "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert SilentFirstSession.sessions >= 2
    client = imap_client(source_server, "alice")
    try:
        assert_archive_matches(client, tmp_path / "archive")
    finally:
        client.logout()
