"""TLS contexts: verified unless the config says otherwise, and built once per setting."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import pytest

from migrator.config import Endpoint
from migrator.wire.tls import _context, tls_context, warm_up


def endpoint(**settings: object) -> Endpoint:
    return Endpoint(kind="imap", host="mail.example.test", port=993, **settings)  # type: ignore[arg-type]


def test_verified_by_default_and_shared_between_connections() -> None:
    first, second = tls_context(endpoint()), tls_context(endpoint(username="other"))
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert first is second  # the CA store is loaded once, not per connection


def test_unverified_only_when_the_config_says_so() -> None:
    context = tls_context(endpoint(tls_verify=False))
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert tls_context(endpoint()).verify_mode == ssl.CERT_REQUIRED  # not shared with it


def test_a_ca_file_gets_its_own_context(certs) -> None:
    with_ca = tls_context(endpoint(ca_file=Path(certs.ca_cert)))
    assert with_ca is not tls_context(endpoint())
    assert with_ca is tls_context(endpoint(ca_file=Path(certs.ca_cert), username="x"))
    assert any(cert.get("subject") for cert in with_ca.get_ca_certs())


def test_a_warm_up_makes_the_context_on_its_own_thread_and_connections_wait_for_it(
        certs, monkeypatch) -> None:
    """Made once, away from the caller, and handed to the first connection; nothing is made
    for endpoints that never use TLS."""
    makers: list[str] = []
    real = ssl.create_default_context

    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        makers.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", recorded)
    _context.cache_clear()
    try:
        warm_up(endpoint(security="plain"), Endpoint(kind="mbox", host="", port=0), None)
        tls_context(endpoint())  # no warm-up was started: made here
        assert makers == ["MainThread"]
        secured = endpoint(ca_file=Path(certs.ca_cert))
        warm_up(secured, endpoint(ca_file=Path(certs.ca_cert), username="other"))
        context = tls_context(secured)  # waits for the warm-up rather than making its own
        assert makers == ["MainThread", "tls-warm-up"]
        assert tls_context(secured) is context
    finally:
        _context.cache_clear()


def test_a_warm_up_that_cannot_read_its_ca_file_leaves_the_error_to_the_connection(
        tmp_path, capfd) -> None:
    missing = endpoint(ca_file=tmp_path / "missing.pem")
    warm_up(missing)
    with pytest.raises(OSError):
        tls_context(missing)
    assert capfd.readouterr().err == ""  # no traceback from the warm-up's thread
