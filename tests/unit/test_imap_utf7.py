"""migrator.imap_utf7 gives imapclient's answers without loading imapclient."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from imapclient import imap_utf7 as reference

from migrator import imap_utf7

RFC_3501_EXAMPLE = ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-")
ALPHABET = [*"&-AGFaZz09,+/ .~", "é", "台", "\U0001f600", "\x00", "\x7f", "\ud800"]


def outcome(function, value):  # type: ignore[no-untyped-def]
    try:
        return function(value)
    except Exception as exc:  # the same kind of refusal counts as the same answer
        return type(exc)


@pytest.mark.parametrize(("name", "wire"), [RFC_3501_EXAMPLE, ("Entwürfe", b"Entw&APw-rfe"),
                                            ("R&D", b"R&-D"), ("😀", b"&2D3eAA-"),
                                            ("", b""), ("INBOX", b"INBOX")])
def test_names_and_their_wire_forms(name, wire):
    assert imap_utf7.encode(name) == wire
    assert imap_utf7.decode(wire) == name


def test_random_names_and_wire_forms_decode_as_imapclient_decodes_them():
    """Broken wire forms too (an unended run, stray bits, '&' inside a run, raw UTF-8):
    imapclient's answer, or the same kind of error."""
    rng = random.Random(3501)
    for _ in range(20_000):
        name = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        encoded = outcome(reference.encode, name)
        assert outcome(imap_utf7.encode, name) == encoded, name
        wires = [name.encode("utf-8", "replace"), name.encode("latin-1", "replace")]
        for wire in [*wires, *([encoded] if isinstance(encoded, bytes) else [])]:
            assert outcome(imap_utf7.decode, wire) == outcome(reference.decode, wire), wire


def test_a_well_formed_name_does_not_load_imapclient():
    code = ("import sys; from migrator import imap_utf7; "
            "imap_utf7.decode(imap_utf7.encode('Entwürfe/台北')); "
            "print('imapclient' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"
