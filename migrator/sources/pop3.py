"""POP3 client for the pull engine: connect (TLS, STLS, plain), log in, list, fetch exact bytes.

poplib opens the connection, negotiates TLS and logs in; multi-line replies are read here
instead, because poplib splits lines and drops their terminators, and we store a message
exactly as the server sent it (dot-unstuffed, each line's own line ending kept; RFC 1939
section 3). Commands are pipelined when the server offers PIPELINING (RFC 2449). UTF-8 mode
(RFC 6856) is asked for when offered: without it a server may serve a message with UTF-8
headers as a generated wrapper that changes at every RETR (Courier). Knows nothing of the
manifest.
"""

from __future__ import annotations

import io
import logging
import poplib
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from migrator.auth import TokenProvider
from migrator.config import Endpoint
from migrator.errors import AuthError, ConnectError, ConnectionLost, RetryableError
from migrator.sources.pop3_wire import Pop3Error, ReplyReader
from migrator.wire.greeting import connect_failure, greeting_timeout
from migrator.wire.imapconn import tokens_for
from migrator.wire.sasl import xoauth2_response
from migrator.wire.tls import describe_os_error, tls_context

log = logging.getLogger(__name__)

STATUS_MAX = 8 * 1024  # a status line longer than this is not POP3
PIPELINE_WINDOW = 64  # commands in flight when the server offers PIPELINING


class MaildropInUse(RetryableError):
    """`-ERR [IN-USE]`: another POP3 client holds the maildrop's lock (RFC 2449 section 8.1.2)."""


class MaildropBusyError(ConnectError):
    """The maildrop stayed locked by another client after every retry: try again later."""


@dataclass(frozen=True)
class MaildropEntry:
    """One message in the maildrop, as LIST and UIDL describe it in this session."""

    number: int
    size: int  # octets as LIST reports them (may differ from the bytes RETR sends)
    uidl: str | None


def _lines(body: bytes) -> list[list[str]]:
    return [line.split() for line in body.decode("ascii", "replace").splitlines() if line]


class Pop3Session:
    """A logged-in POP3 session (TRANSACTION state).

    Nothing is deleted until `quit()` gets its +OK: a session that ends any other way leaves
    the maildrop as it was (RFC 1939 section 6).
    """

    def __init__(self, pop: poplib.POP3, where: str) -> None:
        self.pop = pop
        self.where = where
        self.pipelining = False
        self.utf8 = False  # UTF-8 mode (RFC 6856) is on
        # from here on every reply is read here, starting with what poplib already buffered
        self.reader = ReplyReader(cast(io.BufferedReader, pop.file).readinto1)

    def _send(self, *commands: bytes) -> None:
        for command in commands:
            log.debug("%s > %s", self.where, command.decode("ascii", "replace"))
        try:
            self.pop.sock.sendall(b"".join(command + b"\r\n" for command in commands))
        except OSError as exc:
            raise ConnectionLost(describe_os_error(exc)) from None

    def _multiline(self, command: bytes) -> bytes:
        self._send(command)
        with _network_errors():
            self.reader.status()
            return self.reader.body()

    def capabilities(self) -> dict[str, list[str]]:
        """CAPA (RFC 2449); an empty dict if the server predates it."""
        try:
            body = self._multiline(b"CAPA")
        except Pop3Error:
            return {}
        caps = {words[0].upper(): words[1:] for words in _lines(body)}
        self.pipelining = "PIPELINING" in caps
        return caps

    def enable_utf8(self) -> bool:
        """UTF8 (RFC 6856) after login, for a server that offers it only there; a refusal
        is logged and the session goes on as it was."""
        self._send(b"UTF8")
        with _network_errors():
            try:
                self.reader.status()
            except Pop3Error as exc:
                log.info("%s: UTF8 refused after login: %s", self.where, exc)
                return False
        self.utf8 = True
        return True

    def uidls(self) -> dict[int, str] | None:
        """Message number -> UIDL, or None when the server has no UIDL command."""
        try:
            body = self._multiline(b"UIDL")
        except Pop3Error:
            return None
        return {int(words[0]): words[1] for words in _lines(body) if len(words) >= 2}

    def sizes(self) -> dict[int, int]:
        """Message number -> size in octets (LIST)."""
        body = self._multiline(b"LIST")
        return {int(words[0]): int(words[1]) for words in _lines(body) if len(words) >= 2}

    def listing(self) -> list[MaildropEntry]:
        sizes = self.sizes()
        uidls = self.uidls()
        return [MaildropEntry(number, size, uidls.get(number) if uidls is not None else None)
                for number, size in sorted(sizes.items())]

    def retrieve(self, numbers: Iterable[int]) -> Iterator[tuple[int, bytes | Pop3Error]]:
        """(number, exact bytes) for each message, or the server's -ERR for that message."""
        return self._pipeline(numbers, b"RETR %d", multiline=True, sized=True)

    def headers(self, numbers: Iterable[int]) -> Iterator[tuple[int, bytes | Pop3Error]]:
        """(number, header block) from `TOP n 0`, for servers without UIDL."""
        return self._pipeline(numbers, b"TOP %d 0", multiline=True)

    def delete(self, numbers: Iterable[int]) -> Iterator[tuple[int, bytes | Pop3Error]]:
        """Mark messages deleted; the server removes them only at QUIT."""
        return self._pipeline(numbers, b"DELE %d", multiline=False)

    def _pipeline(self, numbers: Iterable[int], template: bytes, multiline: bool,
                  sized: bool = False) -> Iterator[tuple[int, bytes | Pop3Error]]:
        window = PIPELINE_WINDOW if self.pipelining else 1
        todo = iter(numbers)
        in_flight: deque[int] = deque()
        while True:
            batch: list[int] = []
            if len(in_flight) <= window // 2:  # refill by half a window: few, larger sends
                batch = [number for _, number in zip(range(window - len(in_flight)), todo,
                                                     strict=False)]
            if batch:
                self._send(*(template % number for number in batch))
                in_flight.extend(batch)
            if not in_flight:
                return
            number = in_flight.popleft()
            yield number, self._reply(multiline, sized)

    def _reply(self, multiline: bool, sized: bool = False) -> bytes | Pop3Error:
        with _network_errors():
            try:
                status = self.reader.status()
            except Pop3Error as exc:
                return exc
            if not multiline:
                return status
            return self.reader.body(announced_size(status) if sized else 0)

    def quit(self) -> bytes:
        """QUIT: the server commits deletions and answers +OK (ConnectionLost otherwise)."""
        self._send(b"QUIT")
        with _network_errors():
            try:
                reply = self.reader.status()
            except Pop3Error as exc:
                raise ConnectionLost(f"QUIT refused: {exc}") from None
        self.close()
        return reply

    def close(self) -> None:
        """Drop the connection without QUIT: the server deletes nothing."""
        _close(self.pop, self.where)


def announced_size(status: bytes) -> int:
    """The size in "+OK 1234 octets" (RETR's usual reply, RFC 1939); 0 if it has none."""
    words = status.split(None, 2)
    return int(words[1]) if len(words) > 1 and words[1].isdigit() else 0


def _close(pop: poplib.POP3, where: str) -> None:
    try:
        pop.close()
    except OSError:
        log.debug("%s: connection already closed", where)


@contextmanager
def _network_errors() -> Iterator[None]:
    """Socket and TLS failures mid-session become ConnectionLost."""
    try:
        yield
    except (OSError, EOFError) as exc:
        raise ConnectionLost(describe_os_error(exc)) from None


def connect(endpoint: Endpoint, account: str, tokens: TokenProvider | None = None,
            force_refresh: bool = False) -> Pop3Session:
    """A logged-in session; AuthError, ConnectError, or MaildropInUse (retry later)."""
    where = f"{account}: {endpoint.host}:{endpoint.port}"
    pop = _open(endpoint, where)
    try:
        utf8 = _utf8_before_login(pop, where)
        login(pop, endpoint, account, tokens, force_refresh, where)
        session = Pop3Session(pop, where)
        session.utf8 = utf8
        caps = session.capabilities()  # after login: servers may announce more there
        if not utf8 and "UTF8" in caps:
            session.enable_utf8()
    except BaseException:
        _close(pop, where)
        raise
    return session


def _utf8_before_login(pop: poplib.POP3, where: str) -> bool:
    """CAPA, and UTF8 if offered, in the AUTHORIZATION state, where RFC 6856 puts it.

    A server without CAPA, or one refusing UTF8, is asked nothing more; the session goes on
    (a server that offers UTF8 only after login is asked then)."""
    try:
        offered = "UTF8" in {name.upper() for name in pop.capa()}
        if not offered:
            return False
        reply = _login_command(pop, b"UTF8", expect_continuation=False)
    except (poplib.error_proto, UnicodeDecodeError):
        return False
    except (OSError, EOFError) as exc:
        raise ConnectError(f"{where}: connection lost before login: "
                           f"{describe_os_error(exc)}") from None
    if not reply.startswith(b"+OK"):
        log.info("%s: UTF8 refused: %s", where, reply.decode("utf-8", "replace").strip())
        return False
    log.debug("%s: UTF-8 mode on (RFC 6856)", where)
    return True


def _open(endpoint: Endpoint, where: str) -> poplib.POP3:
    pop: poplib.POP3
    try:  # the greeting comes at once or never (a clear-text client on a TLS port)
        if endpoint.security == "tls":
            pop = poplib.POP3_SSL(endpoint.host, endpoint.port,
                                  timeout=greeting_timeout(endpoint),
                                  context=tls_context(endpoint))
        else:
            pop = poplib.POP3(endpoint.host, endpoint.port, timeout=greeting_timeout(endpoint))
        pop.sock.settimeout(endpoint.timeout)
    except (OSError, poplib.error_proto) as exc:
        raise ConnectError(f"{where}: cannot connect: {connect_failure(exc, endpoint)}") from None
    if endpoint.security == "starttls":
        try:
            pop.stls(tls_context(endpoint))
        except (OSError, poplib.error_proto) as exc:
            pop.close()
            reason = describe_os_error(exc)
            if "STLS not supported" in reason:
                reason = "the server does not offer STLS (security = \"starttls\")"
            raise ConnectError(f"{where}: cannot start TLS: {reason}") from None
    return pop


def login(pop: poplib.POP3, endpoint: Endpoint, account: str, tokens: TokenProvider | None,
          force_refresh: bool, where: str) -> None:
    """USER/PASS, or AUTH XOAUTH2 (Exchange); -ERR replies mapped to what they mean."""
    try:
        if endpoint.auth == "xoauth2":
            provider = tokens or tokens_for(endpoint, account)
            assert provider is not None
            _xoauth2(pop, endpoint.username, provider.token(force_refresh))
        else:
            assert endpoint.password is not None
            pop.user(endpoint.username)
            pop.pass_(endpoint.password.resolve())
    except poplib.error_proto as exc:
        raise _login_error(str(exc.args[0] if exc.args else exc), endpoint, where) from None
    except (OSError, EOFError) as exc:
        raise ConnectError(f"{where}: connection lost during login: "
                           f"{describe_os_error(exc)}") from None


def _xoauth2(pop: poplib.POP3, username: str, token: str) -> None:
    """SASL XOAUTH2 (what Exchange Online's POP3 accepts), without an initial response."""
    _login_command(pop, b"AUTH XOAUTH2", expect_continuation=True)
    reply = _login_command(pop, xoauth2_response(username, token), expect_continuation=False)
    if reply.startswith(b"+ ") or reply.rstrip() == b"+":  # an error challenge: end the exchange
        reply = _login_command(pop, b"", expect_continuation=False)
    if not reply.startswith(b"+OK"):
        raise poplib.error_proto(reply.decode("utf-8", "replace").strip())


def _login_command(pop: poplib.POP3, line: bytes, expect_continuation: bool) -> bytes:
    pop.sock.sendall(line + b"\r\n")
    reply = pop.file.readline(STATUS_MAX)
    if not reply:
        raise poplib.error_proto("-ERR EOF")
    if expect_continuation and not reply.startswith(b"+"):
        raise poplib.error_proto(reply.decode("utf-8", "replace").strip())
    return bytes(reply)


def _login_error(text: str, endpoint: Endpoint, where: str) -> Exception:
    text = text.removeprefix("b'").removesuffix("'").strip()
    if "[IN-USE]" in text:
        return MaildropInUse(f"{where}: maildrop locked by another POP3 client: {text}")
    if "[SYS/TEMP]" in text or text == "-ERR EOF":
        return ConnectionLost(f"{where}: {text}")
    return AuthError(f"{where}: login refused for {endpoint.username}: {text}")

