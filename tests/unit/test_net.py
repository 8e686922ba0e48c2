"""TLS contexts: verified unless the config says otherwise, and built once per setting."""

from __future__ import annotations

import ssl
from pathlib import Path

from migrator.config import Endpoint
from migrator.wire.tls import tls_context


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
