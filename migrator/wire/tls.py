"""TLS settings shared by every connection: verified unless the config says otherwise."""

from __future__ import annotations

import functools
import ssl

from migrator.config import Endpoint


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """The TLS settings for `endpoint`: one context per (CA file, verify) for the process.

    Loading the system's CA store costs ~20 ms of CPU; a batch opens several connections per
    mailbox for hundreds of mailboxes, and a context is safe to share between threads.
    """
    ca_file = str(endpoint.ca_file) if endpoint.ca_file is not None else None
    return _context(ca_file, endpoint.tls_verify)


@functools.lru_cache(maxsize=16)
def _context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    if not verify:  # explicit `tls_verify = false` in the config, nothing else
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_os_error(exc: BaseException) -> str:
    """A short reason for a network failure, without a traceback."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or exc.__class__.__name__
