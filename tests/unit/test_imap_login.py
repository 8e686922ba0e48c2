"""A connection that drops during LOGIN is a connection failure (retried), not a refused login.

Exchange and the fault proxy can end a session at any moment, also while a reconnect is
logging in; imapclient reports that as a LoginError("socket error: EOF"), which once made a
transient drop a fatal "login refused" (exit 5).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from migrator.config import Endpoint
from migrator.errors import AuthError, ConnectError
from migrator.secrets import Secret
from migrator.wire.imapconn import connect


def _serve_once(listener: socket.socket, answer: bytes | None) -> None:
    """Greet, answer CAPABILITY, then answer LOGIN with `answer` or hang up (None)."""
    conn, _ = listener.accept()
    with conn, conn.makefile("rb") as lines:
        conn.sendall(b"* OK test server ready\r\n")
        for line in lines:
            tag, _, command = line.partition(b" ")
            if command.upper().startswith(b"CAPABILITY"):
                conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
            elif answer is None:
                return
            else:
                conn.sendall(tag + b" " + answer + b"\r\n")


@pytest.fixture
def server(request) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve_once, args=(listener, request.param), daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=10)


def endpoint(port: int) -> Endpoint:
    return Endpoint("imap", "127.0.0.1", port, security="plain", username="bob",
                    password=Secret("literal-Pw-77"), timeout=10)


@pytest.mark.parametrize("server", [None], indirect=True)
def test_a_connection_dropped_during_login_is_lost_not_refused(server: int) -> None:
    with pytest.raises(ConnectError, match="connection lost during login") as lost:
        connect(endpoint(server), "bob")
    assert not isinstance(lost.value, AuthError)
    assert "literal-Pw-77" not in str(lost.value)


@pytest.mark.parametrize("server", [b"NO [AUTHENTICATIONFAILED] Authentication failed."],
                         indirect=True)
def test_a_refused_login_is_an_auth_error(server: int) -> None:
    with pytest.raises(AuthError, match=r"login refused for bob: .*Authentication failed"):
        connect(endpoint(server), "bob")
