"""TLS settings shared by every connection: verified unless the config says otherwise."""

from __future__ import annotations

import contextlib
import functools
import ssl
import threading

from migrator.config import Endpoint

_making = threading.Lock()  # one context made at a time: a caller waits for the warm-up's


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """The TLS settings for `endpoint`: one context per (CA file, verify) for the process.

    Loading the system's CA store costs ~20 ms of CPU; a batch opens several connections per
    mailbox for hundreds of mailboxes, and a context is safe to share between threads.
    """
    return _made(*_key(endpoint))


def warm_up(*endpoints: Endpoint | None) -> None:
    """Make the contexts `endpoints` will connect with, on a thread of their own.

    Loading the CA store releases the GIL, so a command that will connect soon (a no-op probe
    first imports its modules and reads the manifest) has it made meanwhile, and its first
    connection, which waits for it, starts the TLS handshake ~30 ms sooner."""
    keys = {_key(e) for e in endpoints
            if e is not None and not e.is_file and e.security != "plain"}
    if not keys:
        return
    _making.acquire()  # held for the thread: a connection asked for meanwhile waits for it
    try:
        threading.Thread(target=_make_all, args=(keys,), name="tls-warm-up",
                         daemon=True).start()
    except BaseException:
        _making.release()
        raise


def _make_all(keys: set[tuple[str | None, bool]]) -> None:
    try:
        for key in keys:
            with contextlib.suppress(Exception):  # an unreadable CA file, say: the
                _context(*key)  # connection makes it again and reports the error
    finally:
        _making.release()


def _made(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    with _making:
        return _context(ca_file, verify)


def _key(endpoint: Endpoint) -> tuple[str | None, bool]:
    return (str(endpoint.ca_file) if endpoint.ca_file is not None else None,
            endpoint.tls_verify)


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
