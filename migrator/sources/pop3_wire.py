"""POP3 replies read off the wire with their bytes intact (RFC 1939 section 3).

poplib splits multi-line replies into lines and drops each line's terminator, so a message
served with bare LF could not be told from one served with CRLF. This reader keeps every
byte: it removes only the byte-stuffed leading "." of a line and the lone "." line that ends
the reply. It reads large chunks and searches them with bytes methods, so a message costs a
few C-level scans rather than a Python step per line; pipelined replies that arrive in the
same chunk stay buffered for the next read.
"""

from __future__ import annotations

from collections.abc import Callable

from migrator.engine.retry import ConnectionLost

CHUNK = 256 * 1024
STATUS_MAX = 8 * 1024  # a status line longer than this is not POP3
_LONGEST_END = len(b"\n.\r\n")


class Pop3Error(Exception):
    """A `-ERR` reply to one command; the session is still usable."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply.decode("utf-8", "replace").strip())
        self.reply = reply


def unstuff(body: bytes) -> bytes:
    """Undo byte-stuffing: the server put one extra "." before every line starting with "."."""
    if b"\n." in body:
        body = body.replace(b"\n.", b"\n")
    return body[1:] if body.startswith(b".") else body


class ReplyReader:
    """Status lines and multi-line bodies from a `read(n)`-style source (socket file read1)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read = read
        self.buffer = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        chunk = self.read(CHUNK)
        if not chunk:
            raise ConnectionLost("connection closed by the server")
        if self.pos:
            del self.buffer[:self.pos]
            self.pos = 0
        self.buffer += chunk

    def line(self) -> bytes:
        """One line with its terminator."""
        while True:
            end = self.buffer.find(b"\n", self.pos)
            if end >= 0:
                with memoryview(self.buffer) as view:
                    line = bytes(view[self.pos:end + 1])
                self.pos = end + 1
                return line
            if len(self.buffer) - self.pos > STATUS_MAX:
                raise ConnectionLost("reply line too long: not a POP3 server?")
            self._fill()

    def status(self) -> bytes:
        """A status line: +OK returned, -ERR raised as Pop3Error."""
        line = self.line()
        if line.startswith(b"+OK"):
            return line
        if line.startswith(b"-ERR"):
            raise Pop3Error(line)
        raise ConnectionLost(f"unexpected reply {line[:80]!r}")

    def body(self) -> bytes:
        """The rest of a multi-line reply, unstuffed, line endings exactly as sent.

        Each "\n." found starts either a byte-stuffed line or the "." line that ends the
        reply; noting the stuffed ones on the way saves a second scan of clean bodies.
        """
        scanned = 0  # bytes of the body already searched
        stuffed = False
        while True:
            if scanned == 0:
                for lone in (b".\r\n", b".\n"):  # an empty reply is just the "." line
                    if self.buffer.startswith(lone, self.pos):
                        self.pos += len(lone)
                        return b""
            found = self.buffer.find(b"\n.", self.pos + scanned)
            while found >= 0:
                for tail in (b"\r\n", b"\n"):
                    if self.buffer.startswith(tail, found + 2):
                        return self._take(found + 1, found + 2 + len(tail), stuffed)
                if len(self.buffer) - found < _LONGEST_END:
                    break  # cannot tell yet: the next chunk decides
                stuffed = True
                found = self.buffer.find(b"\n.", found + 2)
            # a marker may straddle two chunks: search its possible first bytes again
            scanned = max(0, len(self.buffer) - self.pos - _LONGEST_END + 1)
            self._fill()

    def _take(self, body_end: int, reply_end: int, stuffed: bool) -> bytes:
        with memoryview(self.buffer) as view:
            body = bytes(view[self.pos:body_end])
        self.pos = reply_end
        return unstuff(body) if stuffed or body.startswith(b".") else body
