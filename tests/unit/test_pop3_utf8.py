"""UTF-8 mode (RFC 6856): asked for when CAPA offers UTF8, never otherwise.

Without it, Courier serves a message with UTF-8 headers as a generated "cannot display"
wrapper whose MIME boundary changes at every RETR. A canned server on loopback records the
commands it gets.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from migrator.config import Endpoint
from migrator.secrets import Secret
from migrator.sources.pop3 import connect

BASE = [b"USER", b"UIDL", b"TOP"]


def _serve(listener: socket.socket, before: list[bytes], after: list[bytes],
           utf8_reply: bytes, heard: list[bytes]) -> None:
    """Greet; answer CAPA with `before` until PASS succeeds, `after` from then on."""
    conn, _ = listener.accept()
    logged_in = False
    with conn, conn.makefile("rb") as lines:
        conn.sendall(b"+OK canned POP3 ready\r\n")
        for line in lines:
            command = line.strip().split(b" ")[0].upper()
            heard.append(command)
            if command == b"CAPA":
                caps = after if logged_in else before
                conn.sendall(b"+OK\r\n" + b"".join(c + b"\r\n" for c in caps) + b".\r\n")
            elif command == b"UTF8":
                conn.sendall(utf8_reply)
            elif command == b"QUIT":
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                logged_in = logged_in or command == b"PASS"
                conn.sendall(b"+OK\r\n")


@pytest.fixture
def canned(request) -> Iterator[tuple[int, list[bytes]]]:
    before, after, utf8_reply = request.param
    heard: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve, args=(listener, before, after, utf8_reply, heard),
                              daemon=True)
    thread.start()
    yield listener.getsockname()[1], heard
    listener.close()
    thread.join(timeout=10)


def session_commands(port: int, heard: list[bytes]) -> tuple[bool, list[bytes]]:
    endpoint = Endpoint("pop3", "127.0.0.1", port, security="plain", username="bob",
                        password=Secret("canned-Pw-31"), timeout=10)
    session = connect(endpoint, "bob")
    utf8 = session.utf8
    session.quit()
    return utf8, heard


OK = b"+OK UTF8 enabled\r\n"
ERR = b"-ERR not now\r\n"


@pytest.mark.parametrize("canned, on, commands", [
    # offered before login (RFC 6856's AUTHORIZATION state): sent there, not again
    (([*BASE, b"UTF8 USER"], [*BASE, b"UTF8"], OK), True,
     [b"CAPA", b"UTF8", b"USER", b"PASS", b"CAPA", b"QUIT"]),
    # offered only after login (as Courier's transaction state does): sent after login
    ((BASE, [*BASE, b"UTF8"], OK), True,
     [b"CAPA", b"USER", b"PASS", b"CAPA", b"UTF8", b"QUIT"]),
    # not offered: never sent
    ((BASE, BASE, OK), False, [b"CAPA", b"USER", b"PASS", b"CAPA", b"QUIT"]),
    # refused before login: asked again after, refused again: the session goes on
    (([*BASE, b"UTF8"], [*BASE, b"UTF8"], ERR), False,
     [b"CAPA", b"UTF8", b"USER", b"PASS", b"CAPA", b"UTF8", b"QUIT"]),
    # a name like it is not it
    (([*BASE, b"UTF8X"], [*BASE, b"X-UTF8"], OK), False,
     [b"CAPA", b"USER", b"PASS", b"CAPA", b"QUIT"]),
], indirect=["canned"])
def test_utf8_is_sent_when_offered(canned: tuple[int, list[bytes]], on: bool,
                                   commands: list[bytes]) -> None:
    utf8, heard = session_commands(*canned)
    assert utf8 is on
    assert heard == commands
