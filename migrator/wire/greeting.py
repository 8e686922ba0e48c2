"""The first seconds of a connection: a short wait for the greeting, and a `security` that
does not match the port said in one line.

A client speaking clear text (`plain`, `starttls`) to a TLS port hears nothing, since the
server waits for a TLS handshake: without a bound of its own the greeting would wait the
whole `timeout` (60 s) and end as "timed out". A TLS client on a clear-text port reads the
greeting as a broken TLS record (OpenSSL's WRONG_VERSION_NUMBER). Both name the setting.
"""

from __future__ import annotations

import ssl
import traceback

from migrator.config import Endpoint
from migrator.wire.tls import describe_os_error

GREETING_TIMEOUT = 10.0  # seconds: servers greet at once; TCP connect and TLS fit in it too
# OpenSSL's words when the other side does not speak TLS (the greeting read as a record)
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE",
                      "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"})


def greeting_timeout(endpoint: Endpoint) -> float:
    """How long connecting may take until the server's greeting (never more than `timeout`)."""
    return min(endpoint.timeout, GREETING_TIMEOUT)


def connect_failure(exc: BaseException, endpoint: Endpoint) -> str:
    """Why opening a connection (TCP, TLS, greeting) failed, naming `security` and the port
    when they look mismatched."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLError) and reason in _NOT_TLS:
        return (f'the server answers in plain text, not TLS: check security = '
                f'"{endpoint.security}" for port {endpoint.port} (a clear-text port needs '
                f'"starttls" or "plain")')
    if isinstance(exc, TimeoutError) and endpoint.security != "tls" and _connected(exc):
        return (f"no greeting within {greeting_timeout(endpoint):g}s: port {endpoint.port} "
                f'seems to expect TLS at once: check security = "{endpoint.security}" '
                f'(such a port needs "tls")')
    return describe_os_error(exc)


def busy(exc: BaseException, endpoint: Endpoint) -> bool:
    """A connect that timed out, not as a `security` mismatch does: a server that is slow to
    accept, to finish TLS or to greet (busy at the moment) is worth another try."""
    return isinstance(exc, TimeoutError) and not (
        endpoint.security != "tls" and _connected(exc))


def _connected(exc: BaseException) -> bool:
    """Did the timeout come after the TCP connection was made (waiting for the greeting)?"""
    return not any(frame.f_code.co_name == "create_connection"
                   for frame, _ in traceback.walk_tb(exc.__traceback__))
