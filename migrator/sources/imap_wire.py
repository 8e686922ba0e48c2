"""A lean IMAP response reader over an established connection's socket.

imapclient parses every response byte by byte in Python, which caps a bulk `UID FETCH` of
message bodies at a fraction of what the network and disk can do. This module reads
responses with buffered `readline`/`read` calls, takes literals (RFC 3501 section 4.3) as one
slice, and parses only the small non-literal parts. It also lets a caller pipeline commands
(send the next FETCH before the previous one completes) and see each message as it arrives,
so a reader holds one message at a time, not one batch.

Errors are classified here, where they enter, into migrator's own: connection-level trouble
(EOF, BYE, garbage) raises `ConnectionClosed` (a ConnectionLost); a tagged NO/BAD raises
`CommandFailed`; and what the server's words say is worth another try (Exchange's throttling,
`AccessTokenExpired`) raises Throttled or TokenExpired, whether it came as NO, BAD or BYE.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

from migrator.errors import AccountError, ConnectionLost, MigratorError, RetryableError
from migrator.wire.replies import retryable_reply

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024 * 1024  # one response line without its literals (a huge SEARCH fits)

Value: TypeAlias = bytes | int | list["Value"] | None

_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}\r?\n\Z")
_TOKEN = re.compile(
    rb"""[ ]*(?:
        (?P<open>\()
      | (?P<close>\))
      | "(?P<quoted>(?:[^"\\]|\\.)*)"
      | (?P<atom>(?:\[[^\]]*\]|[^\s()"{])+)  # a [section] may hold spaces and parens
    )""",
    re.VERBOSE | re.DOTALL,
)
_UNQUOTE = re.compile(rb"\\(.)")
_DIGITS = re.compile(rb"\d+\Z")


class ConnectionClosed(ConnectionLost):
    """The server closed the connection, said BYE, or sent something unreadable."""


class CommandFailed(AccountError):
    """A command completed with NO or BAD not worth retrying; `text` is the server's reason.

    The engine decides what it spoils (a batch, a folder); uncaught, it spoils the account.
    """

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def refused(status: str, text: str) -> MigratorError:
    """A tagged NO/BAD: Throttled or TokenExpired if the words say so, else CommandFailed."""
    return retryable_reply(text) or CommandFailed(status, text)


def closed(text: str) -> RetryableError:
    """A BYE: TokenExpired (or Throttled) if the words say so, else ConnectionClosed."""
    return retryable_reply(text) or ConnectionClosed(text)


@dataclass(frozen=True)
class Untagged:
    """`* ...`: `kind` upper-cased (FETCH, EXISTS, LIST, STATUS, ...), `number` for
    `* 12 FETCH`, and the parsed rest of the response."""

    kind: str
    number: int | None
    data: list[Value]


@dataclass(frozen=True)
class Completion:
    """The tagged line that ends a command."""

    tag: bytes
    status: str  # OK | NO | BAD
    text: str


Response = Untagged | Completion


class Wire:
    """Sends tagged commands and reads responses on one connection.

    `before_literal(n)`, when set, is called before a literal of `n` bytes is read, so the
    caller can wait until memory for it is free.
    """

    def __init__(self, send: Callable[[bytes], None], stream: BinaryIO) -> None:
        self._send = send
        self._stream = stream
        self._tags = itertools.count(1)
        self.before_literal: Callable[[int], None] | None = None

    def send(self, command: bytes) -> bytes:
        """Send one command line; return its tag."""
        tag = b"M%d" % next(self._tags)
        log.debug("> %s %s", tag.decode(), command[:200].decode("ascii", "replace"))
        try:
            self._send(tag + b" " + command + b"\r\n")
        except OSError as exc:
            raise ConnectionClosed(f"connection lost while sending: {exc}") from exc
        return tag

    def read(self) -> Response:
        """The next complete response (untagged, or a command's completion)."""
        return self.interpret(self.read_parts())

    def interpret(self, parts: list[bytes]) -> Response:
        """A response read by `read_parts`, parsed."""
        head = parts[0]
        if head.startswith(b"* "):
            return self._untagged(parts)
        if head.startswith(b"+"):
            raise ConnectionClosed("unexpected continuation request from the server")
        tag, _, rest = head.partition(b" ")
        status, _, text = rest.partition(b" ")
        return Completion(tag, status.upper().decode("ascii", "replace"),
                          text.decode("utf-8", "replace"))

    @staticmethod
    def finished(response: Response, tag: bytes) -> bool:
        """True if `response` completes `tag`; `refused(...)` if it completes it with NO/BAD.

        Completions of other tags (earlier pipelined commands nobody waits for) are ignored.
        """
        if not isinstance(response, Completion) or response.tag != tag:
            return False
        if response.status != "OK":
            raise refused(response.status, response.text)
        return True

    def command(self, command: bytes) -> Iterator[Untagged]:
        """Send `command` and yield its untagged responses; raise `refused(...)` on NO/BAD."""
        tag = self.send(command)
        yield from self.until(tag)

    def until(self, tag: bytes) -> Iterator[Untagged]:
        """Yield untagged responses until `tag` completes (responses of earlier pipelined
        commands included); raise `refused(...)` if it completes with NO or BAD."""
        while True:
            response = self.read()
            if isinstance(response, Untagged):
                yield response
            elif self.finished(response, tag):
                return

    def _read_line(self) -> bytes:
        try:
            line = self._stream.readline(MAX_LINE)
        except OSError as exc:
            raise ConnectionClosed(f"connection lost: {exc}") from exc
        except ValueError as exc:  # reading a closed file
            raise ConnectionClosed("connection closed") from exc
        if not line.endswith(b"\n"):
            if not line:
                raise ConnectionClosed("connection closed by the server")
            if len(line) >= MAX_LINE:
                raise ConnectionClosed("response line too long")
            raise ConnectionClosed("connection closed in the middle of a response")
        return line

    def _read_literal(self, size: int) -> bytes:
        if self.before_literal is not None:
            self.before_literal(size)
        try:
            data = self._stream.read(size)
        except OSError as exc:
            raise ConnectionClosed(f"connection lost in a literal: {exc}") from exc
        except ValueError as exc:
            raise ConnectionClosed("connection closed") from exc
        if data is None or len(data) != size:
            raise ConnectionClosed("connection closed in the middle of a literal")
        return data

    def read_parts(self) -> list[bytes]:
        """A response as [text, literal, text, literal, ..., text] (CRLF stripped)."""
        parts: list[bytes] = []
        while True:
            line = self._read_line()
            match = _LITERAL_AT_END.search(line)
            if match is None:
                parts.append(line.rstrip(b"\r\n"))
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("< %s", parts[0][:200].decode("utf-8", "replace"))
                return parts
            parts.append(line[: match.start()])
            parts.append(self._read_literal(int(match.group(1))))

    def _untagged(self, parts: list[bytes]) -> Untagged:
        head = parts[0][2:]
        first, _, rest = head.partition(b" ")
        number = None
        if _DIGITS.match(first):
            number = int(first)
            first, _, rest = rest.partition(b" ")
        kind = first.upper().decode("ascii", "replace")
        if kind == "BYE":
            raise closed(f"server said BYE: {rest.decode('utf-8', 'replace')}")
        if kind in ("OK", "NO", "BAD", "PREAUTH", "CAPABILITY", "SEARCH", "FLAGS"):
            data: list[Value] = [rest, *parts[1:]] if kind != "SEARCH" else _atoms(rest)
            return Untagged(kind, number, data)
        return Untagged(kind, number, parse([rest, *parts[1:]]))


def _atoms(text: bytes) -> list[Value]:
    return [int(word) if word.isdigit() else word for word in text.split()]


def parse(parts: list[bytes]) -> list[Value]:
    """Parse response text with literals in between into nested lists.

    Atoms stay bytes (numbers become int, NIL becomes None); quoted strings are unquoted;
    literals (the odd-numbered parts) are taken as they are, never copied.
    """
    stack: list[list[Value]] = [[]]
    for index, part in enumerate(parts):
        if index % 2:
            stack[-1].append(part)
            continue
        _tokenize_into(part, stack)
    while len(stack) > 1:  # tolerate a missing ")" at the very end
        inner = stack.pop()
        stack[-1].append(inner)
    return stack[0]


def _tokenize_into(text: bytes, stack: list[list[Value]]) -> None:
    position, end = 0, len(text)
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip() == b"":
                return
            raise ConnectionClosed(f"unparsable response near {text[position:position + 40]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind == "open":
            stack.append([])
        elif kind == "close":
            if len(stack) > 1:
                inner = stack.pop()
                stack[-1].append(inner)
        elif kind == "quoted":
            stack[-1].append(_UNQUOTE.sub(rb"\1", match.group("quoted")))
        else:
            atom = match.group("atom")
            if atom.isdigit():
                stack[-1].append(int(atom))
            elif atom.upper() == b"NIL":
                stack[-1].append(None)
            else:
                stack[-1].append(atom)


def pairs(data: list[Value]) -> dict[bytes, Value]:
    """A FETCH attribute list `(UID 5 FLAGS (...))` as {b"UID": 5, b"FLAGS": [...]}."""
    items = data[0] if len(data) == 1 and isinstance(data[0], list) else data
    out: dict[bytes, Value] = {}
    for index in range(0, len(items) - 1, 2):
        key = items[index]
        if isinstance(key, bytes):
            out[key.upper()] = items[index + 1]
    return out


def quote(text: str | bytes) -> bytes:
    """An ASCII mailbox name or string as an IMAP quoted string."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if b"\r" in raw or b"\n" in raw or any(byte > 0x7F for byte in raw):
        raise ValueError("cannot quote 8-bit or multi-line text; encode it first")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
