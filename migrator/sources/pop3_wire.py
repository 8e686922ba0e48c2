"""POP3 replies read off the wire with their bytes intact (RFC 1939 section 3).

poplib splits multi-line replies into lines and drops each line's terminator, so a message
served with bare LF could not be told from one served with CRLF. This reader keeps every
byte: it removes only the byte-stuffed leading "." of a line and the lone "." line that ends
the reply. It reads large chunks and searches them with bytes methods, so a message costs a
few C-level scans rather than a Python step per line; pipelined replies that arrive in the
same chunk stay buffered for the next read. The socket reads into one buffer that is reused:
a fresh buffer per read cost a page fault (and the kernel zeroing the page) every 4 KiB.
"""

from __future__ import annotations

from collections.abc import Callable

from migrator.errors import AccountError, ConnectionLost

CHUNK = 256 * 1024  # room asked of each read
BUFFER = 4 * CHUNK  # the buffer's usual size; it grows only for a message larger than this
EXPECTED_MAX = 64 * 1024 * 1024  # an announced size is trusted up to this (bytearray zero-fills)
STATUS_MAX = 8 * 1024  # a status line longer than this is not POP3
_LONGEST_END = len(b"\n.\r\n")


class Pop3Error(AccountError):
    """A `-ERR` reply to one command; the session is still usable.

    Per-message replies hand it back as a value; raised (LIST refused), it spoils the account.
    """

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply.decode("utf-8", "replace").strip())
        self.reply = reply


def unstuff(body: bytes) -> bytes:
    """Undo byte-stuffing: the server put one extra "." before every line starting with "."."""
    if b"\n." in body:
        body = body.replace(b"\n.", b"\n")
    return body[1:] if body.startswith(b".") else body


class ReplyReader:
    """Status lines and multi-line bodies from a `readinto(view) -> count` source (a socket
    file's readinto1).

    `buffer[pos:end]` holds what was read but not yet returned.
    """

    def __init__(self, readinto: Callable[[memoryview], int]) -> None:
        self.readinto = readinto
        self.buffer = bytearray(BUFFER)
        self.pos = self.end = 0

    def _fill(self) -> None:
        if len(self.buffer) - self.end < CHUNK:
            self._make_room()
        with memoryview(self.buffer) as view:
            count = self.readinto(view[self.end:])
        if not count:
            raise ConnectionLost("connection closed by the server")
        self.end += count

    def _make_room(self) -> None:
        """Room for one more read: the unread bytes move to the front of the buffer, which
        grows only while a message larger than it is read (`_take` shrinks it after)."""
        unread = self.end - self.pos
        if unread + CHUNK > len(self.buffer):
            self._resize(2 * (unread + CHUNK))
        else:
            with memoryview(self.buffer) as view:
                view[:unread] = view[self.pos:self.end]  # a memmove within the same pages
            self.pos, self.end = 0, unread

    def _resize(self, size: int) -> None:
        unread = self.end - self.pos
        size = max(size, unread + CHUNK)
        fresh = bytearray(size)
        with memoryview(self.buffer) as view:
            fresh[:unread] = view[self.pos:self.end]
        self.buffer, self.pos, self.end = fresh, 0, unread

    def line(self) -> bytes:
        """One line with its terminator."""
        while True:
            end = self.buffer.find(b"\n", self.pos, self.end)
            if end >= 0:
                line = bytes(self.buffer[self.pos:end + 1])
                self.pos = end + 1
                return line
            if self.end - self.pos > STATUS_MAX:
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

    def body(self, expected: int = 0) -> bytes:
        """The rest of a multi-line reply, unstuffed, line endings exactly as sent.

        Each "\n." found starts either a byte-stuffed line or the "." line that ends the
        reply; noting the stuffed ones on the way saves a second scan of clean bodies.
        `expected` (the size the server announced, if any) lets a big message's buffer be
        made once, rather than grown by doubling with a copy each time.
        """
        if expected + CHUNK > len(self.buffer):
            self._resize(min(expected, EXPECTED_MAX) + 2 * CHUNK)
        scanned = 0  # bytes of the body already searched
        stuffed = False
        while True:
            if scanned == 0:
                for lone in (b".\r\n", b".\n"):  # an empty reply is just the "." line
                    if self.buffer.startswith(lone, self.pos, self.end):
                        self.pos += len(lone)
                        return b""
            found = self.buffer.find(b"\n.", self.pos + scanned, self.end)
            while found >= 0:
                for tail in (b"\r\n", b"\n"):
                    if self.buffer.startswith(tail, found + 2, self.end):
                        return self._take(found + 1, found + 2 + len(tail), stuffed)
                if self.end - found < _LONGEST_END:
                    break  # cannot tell yet: the next chunk decides
                stuffed = True
                found = self.buffer.find(b"\n.", found + 2, self.end)
            # a marker may straddle two chunks: search its possible first bytes again
            scanned = max(0, self.end - self.pos - _LONGEST_END + 1)
            self._fill()

    def _take(self, body_end: int, reply_end: int, stuffed: bool) -> bytes:
        with memoryview(self.buffer) as view:
            body = bytes(view[self.pos:body_end])
        self.pos = reply_end
        if len(self.buffer) > BUFFER and self.end - self.pos + CHUNK <= BUFFER:
            self._resize(BUFFER)  # a big message is done: give its memory back now
        return unstuff(body) if stuffed or body.startswith(b".") else body
