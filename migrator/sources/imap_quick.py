"""A quick, read-only look at an IMAP source with the standard library alone: log in, LIST
with STATUS, log out.

For the no-op probe, which must prove "nothing changed" before a command pays for imapclient,
SQLAlchemy and MSAL. LOGIN with a password, or XOAUTH2 with a token the caller already has
(the migrate probe reads one from the token cache). TLS follows the
endpoint exactly as `wire.imapconn` does (the same context, the same `security`, the host
name checked), and replies are read and parsed by the pull's own reader and parsers. The
round trips are the fewest a look can take: no CAPABILITY before LOGIN (the LOGIN reply
says what the server offers; asked only where it does not), no wait for LOGOUT's answer.
Anything unexpected raises; the probe then falls through to the full path, which reports it.
"""

from __future__ import annotations

import contextlib
import re
import socket

from migrator.config import Endpoint
from migrator.errors import AuthError
from migrator.sources.imap_folders import (
    Folder,
    FolderStatus,
    list_with_status,
    status_items,
    status_of,
)
from migrator.sources.imap_wire import Completion, ConnectionClosed, Untagged, Wire, quote
from migrator.wire.greeting import greeting_timeout
from migrator.wire.sasl import xoauth2_response
from migrator.wire.tls import tls_context

_CAPABILITY_CODE = re.compile(r"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
LOGIN_TAG = b"Q0"  # the Wire's own tags are M1, M2, ...
# seconds to wait for the connection and greeting: a server that slow is left to the full
# path, so an unreachable one costs its timeout once and this little more
PATIENCE = 3.0


class QuickSource:
    """One logged-in connection; `close()` logs out."""

    def __init__(self, endpoint: Endpoint, token: str | None = None) -> None:
        """Log in: with `token` by XOAUTH2, else with the endpoint's password."""
        if token is None and (endpoint.auth != "password" or endpoint.password is None):
            raise AuthError("the quick look logs in with a password or a token")
        self._sock = socket.create_connection((endpoint.host, endpoint.port),
                                              timeout=min(greeting_timeout(endpoint),
                                                          PATIENCE))
        try:
            if endpoint.security == "tls":
                self._secure(endpoint)
            self.wire = self._wire()
            greeting = self.wire.read()
            if not isinstance(greeting, Untagged) or greeting.kind != "OK":
                raise ConnectionClosed("no OK greeting (PREAUTH is left to the full path)")
            if endpoint.security == "starttls":
                for _ in self.wire.command(b"STARTTLS"):
                    pass
                self._secure(endpoint)
                self.wire = self._wire()
            self._sock.settimeout(endpoint.timeout)
            greeted = self._capabilities_told(greeting)
            if token is not None:
                said = self._xoauth2(endpoint.username, token, "SASL-IR" in greeted)
            else:
                assert endpoint.password is not None
                said = self._login(endpoint.username, endpoint.password.resolve())
            self.capabilities = self._capabilities(said)
        except BaseException:
            self._shutdown()
            raise

    def _secure(self, endpoint: Endpoint) -> None:
        """TLS on the connection, as imapclient does it (the endpoint's context and host)."""
        self._sock = tls_context(endpoint).wrap_socket(self._sock,
                                                       server_hostname=endpoint.host)

    def _wire(self) -> Wire:
        sock = self._sock
        return Wire(sock.sendall, sock.makefile("rb"))

    def _login(self, username: str, password: str) -> str:
        """LOGIN, sent past the Wire so that no debug line ever holds the password; the
        text of the OK reply."""
        self._sock.sendall(LOGIN_TAG + b" LOGIN " + quote(username) + b" " + quote(password)
                           + b"\r\n")
        while True:
            response = self.wire.read()
            if isinstance(response, Completion) and response.tag == LOGIN_TAG:
                if response.status != "OK":
                    raise AuthError("login refused")
                return response.text

    @staticmethod
    def _capabilities_told(greeting: Untagged) -> set[str]:
        """The capabilities a greeting names (`* OK [CAPABILITY ...]`), upper-cased."""
        text = greeting.data[0] if greeting.data else b""
        found = _CAPABILITY_CODE.search(text.decode("ascii", "replace")
                                        if isinstance(text, bytes) else "")
        return {word.upper() for word in found.group(1).split()} if found else set()

    def _xoauth2(self, username: str, token: str, initial_response: bool) -> str:
        """AUTHENTICATE XOAUTH2, past the Wire (no debug line holds the token); with SASL-IR
        in one round trip. A refusal (the server's JSON challenge) raises AuthError."""
        payload = xoauth2_response(username, token)
        if initial_response:
            self._sock.sendall(LOGIN_TAG + b" AUTHENTICATE XOAUTH2 " + payload + b"\r\n")
        else:
            self._sock.sendall(LOGIN_TAG + b" AUTHENTICATE XOAUTH2\r\n")
        sent = initial_response
        while True:
            parts = self.wire.read_parts()
            if parts[0].startswith(b"+"):
                self._sock.sendall((b"" if sent else payload) + b"\r\n")
                sent = True  # after the payload, a challenge is the refusal: answer empty
                continue
            response = self.wire.interpret(parts)
            if isinstance(response, Completion) and response.tag == LOGIN_TAG:
                if response.status != "OK":
                    raise AuthError("token refused")
                return response.text

    def _capabilities(self, login_reply: str) -> frozenset[str]:
        """What the server offers once logged in: told in the LOGIN reply, else asked."""
        found = _CAPABILITY_CODE.search(login_reply)
        words = found.group(1).split() if found else []
        if not found:
            for response in self.wire.command(b"CAPABILITY"):
                if response.kind == "CAPABILITY":
                    words += [word.decode("ascii", "replace") for text in response.data
                              if isinstance(text, bytes) for word in text.split()]
        return frozenset(word.upper() for word in words)

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.capabilities or "QRESYNC" in self.capabilities

    def folders_with_status(self) -> tuple[list[Folder], dict[str, FolderStatus]]:
        """Every folder LIST shows and the STATUS of each selectable one, as
        `ImapSource.folders_with_status` and `statuses` together ask them (one round trip
        with LIST-STATUS, else two: the STATUS commands pipelined)."""
        items = status_items(self.condstore)
        folders, found = list_with_status(self.wire, self.capabilities, items)
        missing = [f for f in folders if f.selectable and f.raw_name not in found]
        tags = [self.wire.send(b"STATUS " + quote(f.raw_name) + b" (" + items + b")")
                for f in missing]
        for tag in tags:  # a refused STATUS raises: the probe then declines
            for response in self.wire.until(tag):
                if (status := status_of(response)) is not None:
                    found[status[0]] = status[1]
        return folders, found

    def ask(self, commands: list[bytes]) -> list[list[Untagged] | None]:
        """Send `commands` pipelined (one round trip) and return each one's untagged
        responses, or None for a command the server refused (NO or BAD)."""
        tags = [self.wire.send(command) for command in commands]
        answers: list[list[Untagged] | None] = []
        found: list[Untagged] = []
        while len(answers) < len(tags):
            response = self.wire.read()
            if isinstance(response, Untagged):
                found.append(response)
            elif response.tag == tags[len(answers)]:
                answers.append(found if response.status == "OK" else None)
                found = []
        return answers

    def close(self) -> None:
        """Say LOGOUT and leave without waiting for the BYE (nothing is left to read)."""
        with contextlib.suppress(Exception):
            self.wire.send(b"LOGOUT")
        self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

