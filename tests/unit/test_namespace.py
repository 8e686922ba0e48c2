"""NAMESPACE (RFC 2342) parsing, the guess for older archives, and the archive's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.archive import namespaces
from migrator.errors import StorageError
from migrator.namespace import Namespace, guess_prefix, parse_personal
from migrator.sources.imap_wire import parse
from tests.unit.test_imap_wire import source


@pytest.mark.parametrize("line, expected", [
    (b'(("INBOX." ".")) NIL NIL', Namespace("INBOX.", ".")),  # Cyrus, Courier
    (b'(("" ".")) (("shared." ".")) NIL', Namespace("", ".")),  # Dovecot's default
    (b'(("" "/")("#mh/" "/")) NIL NIL', Namespace("", "/")),  # the first personal one
    (b'(("" NIL)) NIL NIL', Namespace("", None)),  # a flat server
    (b'NIL NIL (("#public/" "/"))', Namespace("", None)),  # no personal namespace
])
def test_parse_personal(line: bytes, expected: Namespace) -> None:
    assert parse_personal(parse([line])) == expected


@pytest.mark.parametrize("names, delimiter, expected", [
    (["INBOX", "INBOX.Work", "INBOX.Sent"], ".", "INBOX."),
    (["INBOX", "INBOX.Sub", "Sent"], ".", ""),  # a folder beside INBOX: no prefix
    (["INBOX"], ".", ""),
    (["INBOX", "INBOX/Sub"], "/", "INBOX/"),
    (["INBOX", "Work"], None, ""),
])
def test_guess_prefix(names: list[str], delimiter: str | None, expected: str) -> None:
    assert guess_prefix(names, delimiter) == expected


def test_record_round_trip_per_account(tmp_path: Path) -> None:
    assert namespaces.load(tmp_path, "alice") is None
    assert namespaces.told_by(tmp_path, "alice") is None
    namespaces.save(tmp_path, "alice", Namespace("INBOX.", "."), "imap.example.org:993")
    namespaces.save(tmp_path, "..", Namespace("", "/"), "h:1")  # odd names stay inside
    assert namespaces.load(tmp_path, "alice") == Namespace("INBOX.", ".")
    assert namespaces.told_by(tmp_path, "alice") == "imap.example.org:993"
    assert namespaces.load(tmp_path, "..") == Namespace("", "/")
    assert {p.parent for p in tmp_path.rglob("*.json")} == {tmp_path / "namespaces"}
    namespaces.save(tmp_path, "alice", Namespace("", "."), "new.example.org:993")
    assert namespaces.load(tmp_path, "alice") == Namespace("", ".")
    assert namespaces.told_by(tmp_path, "alice") == "new.example.org:993"


@pytest.mark.parametrize("server, capabilities, expected", [
    (b'* NAMESPACE (("INBOX." ".")) (("user." ".")) (("" "."))\r\nM1 OK\r\n',
     ("IMAP4REV1", "NAMESPACE"), Namespace("INBOX.", ".")),
    (b"", ("IMAP4REV1",), None),  # not asked: the server has no NAMESPACE
    (b"M1 BAD unknown command\r\n", ("IMAP4REV1", "NAMESPACE"), None),  # the pull goes on
])
def test_source_asks_namespace(server: bytes, capabilities: tuple[str, ...],
                               expected: Namespace | None) -> None:
    assert source(server, capabilities).namespace() == expected


def test_an_unwritable_archive_is_a_storage_error_line(tmp_path: Path) -> None:
    (tmp_path / "namespaces").write_text("a file where the directory belongs")
    with pytest.raises(StorageError, match=r"alice: cannot write .*account-alice\.json"):
        namespaces.save(tmp_path, "alice", Namespace("INBOX.", "."), "h:1")
