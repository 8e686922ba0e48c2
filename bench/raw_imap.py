"""The raw-protocol IMAP client of the APPEND baselines (bench.push, bench.batch): TLS,
XOAUTH2 with SASL-IR, then LITERAL+ APPENDs pipelined, WINDOW in flight.

No library between the benchmark and the socket, so a baseline measures what the target
takes, not a client's overhead; one copy, so every baseline sends the same commands.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

WINDOW = 64  # APPENDs in flight per connection
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")  # a line announcing a literal of N bytes


def login(port: int, context: ssl.SSLContext, mailbox: str, token: str
          ) -> tuple[ssl.SSLSocket, Any]:
    """A TLS connection to 127.0.0.1:`port`, logged in to `mailbox` with XOAUTH2."""
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                               server_hostname="127.0.0.1")
    stream = sock.makefile("rb")
    stream.readline()
    sasl = base64.b64encode(f"user={mailbox}\x01auth=Bearer {token}\x01\x01".encode())
    sock.sendall(b"a AUTHENTICATE XOAUTH2 " + sasl + b"\r\n")
    until(stream, b"a")
    return sock, stream


def until(stream: Any, tag: bytes,
          on_literal: Callable[[bytes], object] | None = None) -> None:
    """Read to the reply tagged `tag`; RuntimeError unless it is OK. A literal (`{N}` ending
    a line) is read whole, by its size, and given to `on_literal` (else dropped)."""
    last = b""
    while True:
        line = stream.readline()
        if not line:
            raise closed(last)
        last = line
        if line.startswith(tag + b" "):
            if not line[len(tag) + 1:].startswith(b"OK"):
                raise RuntimeError(line.decode(errors="replace"))
            return
        literal = _LITERAL.search(line)
        if literal:
            data = stream.read(int(literal[1]))
            if on_literal is not None:
                on_literal(data)


def append_pipelined(sock: ssl.SSLSocket, stream: Any,
                     appends: Iterable[tuple[bytes, bytes]]) -> None:
    """Each (arguments, message) as `APPEND arguments {n+}`, a sliding window of WINDOW:
    a reply is read only when the window is full, the rest at the end; then LOGOUT."""
    in_flight = 0
    for number, (arguments, data) in enumerate(appends):
        if in_flight == WINDOW:
            _read_append_reply(stream)
            in_flight -= 1
        sock.sendall(b"w%d APPEND %s {%d+}\r\n" % (number, arguments, len(data)) + data
                     + b"\r\n")
        in_flight += 1
    while in_flight:
        _read_append_reply(stream)
        in_flight -= 1
    sock.sendall(b"z LOGOUT\r\n")


def _read_append_reply(stream: Any) -> None:
    last = b""
    while True:
        line = stream.readline()
        if not line:
            raise closed(last)
        last = line
        if line.startswith(b"w"):
            if b" OK " not in line[:20]:
                raise RuntimeError(line.decode(errors="replace"))
            return


def closed(last: bytes) -> ConnectionError:
    """The server hung up: with the last line it sent (a `* BYE` says why)."""
    said = last.decode(errors="replace").strip()[:200]
    return ConnectionError("server closed the connection"
                           + (f" after: {said}" if said else " before saying anything"))
