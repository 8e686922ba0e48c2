"""A target that stores a header of its own: every APPENDed message gets `X-Scanned: clean`
on top, as virus scanners and archiving gateways do, so the RFC822.SIZE the server reports
is not the size of the bytes appended. Made of a real server behind a FaultProxy:
`FaultProxy(server.imap_port, rewrite=AddHeader())`; the proxy fixes each APPEND's literal
size, synchronizing or LITERAL+, so the server sees a well-formed command."""

from __future__ import annotations

from .relay import Rewrite

HEADER = b"X-Scanned: clean\r\n"


class AddHeader:
    """A FaultProxy rewrite factory: `header` prepended to every APPEND literal, on every
    connection. `added` counts them (read by tests to time a kill while APPENDs flow)."""

    def __init__(self, header: bytes = HEADER) -> None:
        self.header = header
        self.added = 0

    def __call__(self) -> Rewrite:
        outer = self

        class Scan(Rewrite):
            def client_literal(self, command: str, data: bytes) -> bytes:
                if command != "APPEND":
                    return data
                outer.added += 1
                return outer.header + data

        return Scan()


def unscanned(stored: bytes, header: bytes = HEADER) -> bytes | None:
    """The message as it was appended: `stored` without the added header; None when the
    header is missing (the message did not come through the scanner)."""
    return stored[len(header):] if stored.startswith(header) else None
