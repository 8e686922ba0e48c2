"""A POP3 server that regenerates a message at every RETR (Courier's "cannot display Unicode
content" wrapper, whose MIME boundary changes each time) must not multiply it (issue 14).

The fault proxy plays that server in front of the real Dovecot: every line of one message
carrying its boundary gets the number of the latest RETR appended, so its bytes (and size,
unlike LIST's) change at every RETR.
"""

from __future__ import annotations

import itertools

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.pop3_world import (
    PASSWORD,
    USER,
    archive_rows,
    blob_files,
    message,
    pop3_config,
    seed,
    server_uidls,
)
from tests.world.proxy import FaultProxy, Rewrite

pytestmark = pytest.mark.world

BOUNDARY = b"=_wrapper_boundary"
WRAPPER = (b"From: courier@example.org\r\nTo: bob@example.org\r\n"
           b"Subject: cannot display Unicode content\r\nMessage-ID: <wrapper.1@example.org>\r\n"
           b"MIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="' + BOUNDARY + b'"\r\n\r\n'
           b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\n"
           b"This message has UTF-8 headers your client cannot display.\r\n"
           b"--" + BOUNDARY + b"--\r\n")


class Regenerated(Rewrite):
    """Lines with the boundary carry the number of the latest RETR (of any connection)."""

    retrs = itertools.count(1)

    def __init__(self) -> None:
        self.current = 0

    def client(self, unit: bytes) -> bytes:
        if unit[:4].upper() == b"RETR":
            self.current = next(Regenerated.retrs)
        return unit

    def server(self, unit: bytes) -> bytes:
        return unit.replace(BOUNDARY, BOUNDARY + b"-%d" % self.current)


def test_content_regenerated_at_every_retr_is_kept_once_with_a_warning(source_server,
                                                                        tmp_path):
    source_server.add_user(USER, PASSWORD)
    seed(source_server, [message(n) for n in range(5)] + [WRAPPER])
    wrapper_uidl = list(server_uidls(source_server))[-1]
    with FaultProxy(source_server.pop3_port, imap=False, rewrite=Regenerated) as proxy:
        config = pop3_config(tmp_path, source_server, port=proxy.port)
        first = run_cli("-c", config, "pull", USER)
        assert first.status == ExitStatus.OK, first.stderr
        assert len(archive_rows(tmp_path / "archive")) == 6
        assert proxy.events_of("rewrite")

        for _ in range(3):
            again = run_cli("-c", config, "pull", USER)
            assert again.status == ExitStatus.OK, again.stderr
            assert len(archive_rows(tmp_path / "archive")) == 6, again.stderr
            assert len(blob_files(tmp_path / "archive")) == 6
            warning = [line for line in again.stderr.splitlines()
                       if f"UIDL {wrapper_uidl}" in line]
            assert len(warning) == 1, again.stderr
            assert "<wrapper.1@example.org>" in warning[0]
            assert "different content at every RETR" in warning[0]
            assert "reused" not in again.stderr
