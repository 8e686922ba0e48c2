"""XOAUTH2 sign-in in one round trip where the server takes an initial response (SASL-IR);
the two-step exchange where it does not; a refused token either way an AuthError. What the
client sends is read off the Exchange look-alike's traffic through the test proxy (TLS
ended there)."""

from __future__ import annotations

import re

import pytest

from migrator.config import load
from migrator.errors import AuthError
from migrator.wire import imapconn
from tests.integration.push_world import (
    MAILBOX,
    placeholder_source,
    target_block,
    write_world_config,
)
from tests.world.relay import Rewrite

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]


class Wire:
    """The client's commands by name (an AUTHENTICATE with its initial response as
    "AUTHENTICATE+IR", the token never kept), and optionally the server's greeting and
    capabilities without SASL-IR (a server that takes no initial response)."""

    def __init__(self, hide_sasl_ir: bool = False) -> None:
        self.sent: list[bytes] = []
        self.hide_sasl_ir = hide_sasl_ir

    def __call__(self) -> Rewrite:
        wire = self

        class Record(Rewrite):
            def client(self, unit: bytes) -> bytes:
                words = unit.rstrip(b"\r\n").split(b" ")
                if not words[0].isalnum() or len(words) < 2:
                    wire.sent.append(b"(continuation)")
                elif words[1].upper() == b"AUTHENTICATE":
                    wire.sent.append(b"AUTHENTICATE+IR" if len(words) > 3 else b"AUTHENTICATE")
                else:
                    wire.sent.append(words[1].upper())
                return unit

            def server(self, unit: bytes) -> bytes:
                return unit.replace(b" SASL-IR", b"") if wire.hide_sasl_ir else unit

        return Record()


def signed_in(o365, oauth_service, certs, tmp_path, fault_proxy, wire, mailbox=MAILBOX):
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs, rewrite=wire)
    config = write_world_config(tmp_path, placeholder_source(),
                                target_block(proxy.port, certs.ca_cert, oauth_service,
                                             mailbox=mailbox))
    target = load(config).account("bob").target
    assert target is not None
    return imapconn.connect(target, "bob")


def test_the_token_goes_with_the_command(
        o365, oauth_service, certs, tmp_path, fault_proxy, closing):
    wire = Wire()
    client = closing(signed_in(o365, oauth_service, certs, tmp_path, fault_proxy, wire))

    assert client.has_capability("IDLE") and client.has_capability("NAMESPACE")
    assert client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    # (the greeting, Exchange's way, names no capabilities: imaplib asks before signing in)
    # the token goes with the command, no `+` waited for
    assert wire.sent == [b"CAPABILITY", b"AUTHENTICATE+IR", b"EXAMINE"]


def test_without_sasl_ir_the_token_answers_the_servers_challenge(
        o365, oauth_service, certs, tmp_path, fault_proxy, closing):
    wire = Wire(hide_sasl_ir=True)
    client = closing(signed_in(o365, oauth_service, certs, tmp_path, fault_proxy, wire))

    assert client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    assert wire.sent == [b"CAPABILITY", b"AUTHENTICATE", b"(continuation)", b"EXAMINE"]


@pytest.mark.parametrize("sasl_ir", [True, False])
def test_a_refused_token_is_a_refused_login_either_way(o365, oauth_service, certs, tmp_path,
                                                       fault_proxy, sasl_ir):
    """A mailbox the app was never granted: the server's error challenge is answered and
    its NO taken; the connection is not mistaken for a lost one."""
    o365.add_user("stranger@contoso.test")
    wire = Wire(hide_sasl_ir=not sasl_ir)
    with pytest.raises(AuthError, match=re.escape("login refused for stranger@contoso.test")):
        signed_in(o365, oauth_service, certs, tmp_path, fault_proxy, wire,
                  mailbox="stranger@contoso.test")
    # the error challenge answered (empty), the NO taken, the session ended
    assert wire.sent == [b"CAPABILITY", b"AUTHENTICATE+IR" if sasl_ir else b"AUTHENTICATE",
                         *([] if sasl_ir else [b"(continuation)"]), b"(continuation)",
                         b"LOGOUT"]
