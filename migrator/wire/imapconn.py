"""The one place IMAP connections are made: TLS, login (password or XOAUTH2), error mapping.

Sources and targets both connect through `connect()`; tests and the fault proxy plug in by
pointing the endpoint's host/port at it. Low-level errors become meaningful ones here, where
they enter: `classify()` turns a library exception into a retryable or final migrator error.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError, LoginError

from migrator.auth import TokenProvider, token_provider
from migrator.config import Endpoint
from migrator.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    MigratorError,
)
from migrator.retry import RetryPolicy, retry
from migrator.wire.greeting import busy, connect_failure, greeting_timeout
from migrator.wire.replies import as_text, retryable_reply
from migrator.wire.sasl import xoauth2_response
from migrator.wire.tls import describe_os_error, tls_context

log = logging.getLogger(__name__)


def tokens_for(endpoint: Endpoint, account: str) -> TokenProvider | None:
    if endpoint.auth != "xoauth2":
        return None
    assert endpoint.oauth is not None
    return token_provider(endpoint.oauth, account, endpoint.protocol)


def connect(endpoint: Endpoint, account: str, tokens: TokenProvider | None = None,
            force_refresh: bool = False) -> IMAPClient:
    """An authenticated IMAPClient, or AuthError / ConnectError naming the account."""
    where = f"{account}: {endpoint.host}:{endpoint.port}"
    client = retry(lambda: _open(endpoint, where), policy=SLOW_CONNECTS,
                   retryable=(SlowConnect,), what=f"{account}: the server is slow to answer")
    try:
        if endpoint.security == "starttls":
            client.starttls(tls_context(endpoint))
    except (OSError, imaplib.IMAP4.error, IMAPClientError) as exc:
        close_quietly(client)
        raise ConnectError(f"{where}: cannot connect: {describe_os_error(exc)}") from None
    try:
        login(client, endpoint, account, tokens, force_refresh)
    except BaseException:
        close_quietly(client)
        raise
    return client


class SlowConnect(ConnectError):
    """Connecting timed out, but not as a `security` mismatch does: the server may be busy."""


# A server busy at the moment (the TLS handshake or greeting not within the greeting
# timeout; seen at 16 mailboxes at once on a loaded host) gets two more tries; a refused
# connection, a TLS failure or a `security` mismatch is final at once.
SLOW_CONNECTS = RetryPolicy(attempts=3, base_delay=1.0, max_delay=5.0)


def _open(endpoint: Endpoint, where: str) -> IMAPClient:
    """The connection up to the greeting, which comes at once or never (a clear-text client
    on a TLS port)."""
    try:
        return IMAPClient(endpoint.host, endpoint.port, ssl=endpoint.security == "tls",
                          ssl_context=tls_context(endpoint),
                          timeout=SocketTimeout(greeting_timeout(endpoint), endpoint.timeout))
    except (OSError, imaplib.IMAP4.error, IMAPClientError) as exc:
        error = SlowConnect if busy(exc, endpoint) else ConnectError
        raise error(f"{where}: cannot connect: {connect_failure(exc, endpoint)}") from None


class LostDuringLogin(ConnectError, ConnectionLost):
    """The connection died while logging in: not a refusal. Retry loops may try again (a
    ConnectionLost); callers that only reconnect on a ConnectError see one."""


def login(client: IMAPClient, endpoint: Endpoint, account: str,
          tokens: TokenProvider | None, force_refresh: bool) -> None:
    where = f"{account}: {endpoint.host}:{endpoint.port}"
    try:
        if endpoint.auth == "xoauth2":
            provider = tokens or tokens_for(endpoint, account)
            assert provider is not None
            _oauth2_login(client, endpoint, account, provider, force_refresh)
        else:
            assert endpoint.password is not None
            client.login(endpoint.username, endpoint.password.resolve())
    except LoginError as exc:
        if _connection_died(exc):  # imapclient words a dropped connection as a LoginError
            raise LostDuringLogin(f"{where}: connection lost during login: "
                                  f"{_server_text(exc)}") from None
        raise AuthError(f"{where}: login refused for {endpoint.username}: "
                        f"{_server_text(exc)}") from None
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise LostDuringLogin(f"{where}: connection lost during login: "
                              f"{describe_os_error(exc)}") from None


def _oauth2_login(client: IMAPClient, endpoint: Endpoint, account: str,
                  provider: TokenProvider, force_refresh: bool) -> None:
    """XOAUTH2; a refused token that came from the cache is replaced once by a new one."""
    token, cached = provider.token_and_source(force_refresh)
    try:
        xoauth2(client, endpoint.username, token)
    except LoginError as exc:
        if not cached or _connection_died(exc):
            raise
        log.info("%s: the server refused a cached token; asking for a new one", account)
        xoauth2(client, endpoint.username, provider.token(force_refresh=True))


def xoauth2(client: IMAPClient, user: str, token: str) -> None:
    """AUTHENTICATE XOAUTH2. Where the server takes an initial response (SASL-IR, RFC 4959:
    Exchange Online, Dovecot, Gmail), the token goes with the command: one round trip, not
    two (imaplib sends it only when asked, after a `+`). On a long link that round trip is
    one more wait at every sign-in of every run. A refusal comes as an error challenge,
    answered empty, then NO: LoginError, as IMAPClient raises it (a lost connection: its
    context is the abort)."""
    if not client.has_capability("SASL-IR"):
        client.oauth2_login(user, token)
        return
    imap = client._imap
    initial = xoauth2_response(user, token)
    imap.literal = imaplib._Authenticator(_no_answer).process
    try:
        kind, data = imap._simple_command("AUTHENTICATE", "XOAUTH2", initial.decode("ascii"))
    except IMAPClientError as exc:
        raise LoginError(str(exc)) from exc
    if kind != "OK":
        raise LoginError(as_text(data[-1]))
    imap.state = "AUTH"


def _no_answer(challenge: bytes) -> bytes:
    """The reply to XOAUTH2's error challenge (a JSON reason): empty, and the NO follows."""
    return b""


def _connection_died(exc: LoginError) -> bool:
    return isinstance(exc.__context__, (imaplib.IMAP4.abort, OSError))


def _server_text(exc: BaseException) -> str:
    text = str(exc)
    for prefix in ("b'", 'b"'):
        if text.startswith(prefix) and text.endswith(text[1]):
            text = text[2:-1]
    return text.strip() or "no reason given"


def classify(exc: BaseException) -> BaseException:
    """Map a library exception to Throttled / TokenExpired / ConnectionLost, or keep it."""
    if isinstance(exc, MigratorError):
        return exc
    text = _server_text(exc)
    retryable = retryable_reply(text)
    if retryable is not None:
        return retryable
    if isinstance(exc, (imaplib.IMAP4.abort, OSError, EOFError, ssl.SSLError, socket.timeout)):
        return ConnectionLost(text or exc.__class__.__name__)
    return exc


def close_quietly(client: IMAPClient) -> None:
    """Log out if the connection still works; never raise (it may already be gone)."""
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            log.debug("connection already closed")


@contextmanager
def session(endpoint: Endpoint, account: str,
            tokens: TokenProvider | None = None) -> Iterator[IMAPClient]:
    client = connect(endpoint, account, tokens)
    try:
        yield client
    finally:
        close_quietly(client)
