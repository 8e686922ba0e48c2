"""TLS settings shared by every connection: verified unless the config says otherwise."""

from __future__ import annotations

import ssl

from migrator.config import Endpoint


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if endpoint.ca_file is not None:
        context.load_verify_locations(cafile=str(endpoint.ca_file))
    if not endpoint.tls_verify:  # explicit `tls_verify = false` in the config, nothing else
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
