"""Helpers for the IMAP pull tests: configs for the test world, and two independent views to
compare: what the server serves (plain imapclient, not migrator's reader) and what the
archive holds (plain DB-API and file reads, not migrator's models)."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imapclient
import pytest

from tests.world import manifests
from tests.world.configs import Account, Config, Endpoint, OAuth

PASSWORD_ENV = "MIGRATOR_TEST_IMAP_PASSWORD"


@dataclass(frozen=True)
class Seen:
    """One message as a view shows it."""

    sha256: str
    flags: frozenset[str]
    internaldate: datetime.datetime  # aware
    size: int


def source_config(tmp_path: Path, server, user: str = "alice", *, security: str = "plain",
                  port: int | None = None, extra: Mapping[str, Any] | None = None,
                  archive: str = "archive", account: str = "alice") -> Path:
    """A config pulling `user` of the source test server (password from the environment);
    `extra`: more source fields (tests.world.configs.Endpoint), None removing one."""
    if port is None:
        port = server.imaps_port if security == "tls" else server.imap_port
    source = Endpoint("imap", port=port, username=user, security=security,
                      password=f"env:{PASSWORD_ENV}", ca_file=server.ca_cert, timeout=20)
    return Config(tmp_path / archive, {account: Account(source.but(**(extra or {})))}).write(
        tmp_path / "migrator.toml")


def office365_config(tmp_path: Path, server, oauth, mailbox: str, *, port: int | None = None,
                     extra: Mapping[str, Any] | None = None) -> Path:
    """A config pulling an Exchange look-alike mailbox with an app-only MSAL token."""
    source = Endpoint("office365", port=port or server.imaps_port, username=mailbox,
                      ca_file=server.ca_cert, timeout=20, oauth=OAuth(
                          oauth.authority, oauth.ca_cert, client_secret=f"env:{PASSWORD_ENV}"))
    return Config(tmp_path / "archive", {"o365": Account(source.but(**(extra or {})))}).write(
        tmp_path / "migrator.toml")


def imap_client(server, user: str, password: str = "secret") -> imapclient.IMAPClient:
    client = imapclient.IMAPClient(server.host, server.imap_port, ssl=False, timeout=20)
    client.normalise_times = False
    client.login(user, password)
    return client


def server_view(client: imapclient.IMAPClient, folders=None) -> dict[str, dict[int, Seen]]:
    """{folder: {uid: Seen}} for what the server serves, read with BODY.PEEK[]."""
    view: dict[str, dict[int, Seen]] = {}
    names = folders or [name for flags, _, name in client.list_folders()
                        if b"\\Noselect" not in flags]
    for name in names:
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        items = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]) if uids else {}
        view[name] = {
            uid: Seen(hashlib.sha256(data[b"BODY[]"]).hexdigest(),
                      frozenset(f.decode() for f in data[b"FLAGS"]) - {"\\Recent"},
                      data[b"INTERNALDATE"], len(data[b"BODY[]"]))
            for uid, data in items.items()}
        client.unselect_folder()
    return view


def server_flags(client: imapclient.IMAPClient, folder: str) -> dict[int, frozenset[str]]:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    flags = client.get_flags(uids) if uids else {}
    client.unselect_folder()
    return {uid: frozenset(f.decode() for f in value) - {"\\Recent"}
            for uid, value in flags.items()}


def manifest(archive: Path) -> contextlib.AbstractContextManager[Any]:
    """The manifest read with plain DB-API, SQLite or PostgreSQL (closed afterwards)."""
    return manifests.connect(archive)


def archive_view(archive: Path, account: str = "alice", *,
                 include_gone: bool = False) -> dict[str, dict[int, Seen]]:
    """{folder: {uid: Seen}} for live rows of the archive's current UIDVALIDITY per folder;
    every blob is re-read and re-hashed."""
    view: dict[str, dict[int, Seen]] = {}
    with manifest(archive) as db:
        rows = db.execute(
            "SELECT f.name, f.uidvalidity AS fv, m.* FROM messages m "
            "JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id "
            "WHERE a.name = ? AND f.gone_at IS NULL", (account,)).fetchall()
    for row in rows:
        if row["gone_at"] is not None and not include_gone:
            continue
        data = blob(archive, row["sha256"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"], "blob does not match its name"
        assert len(data) == row["size"]
        folder = view.setdefault(row["name"], {})
        assert row["uid"] not in folder, f"duplicate row for {row['name']} UID {row['uid']}"
        folder[row["uid"]] = Seen(row["sha256"], frozenset(row["flags"].split()),
                                  datetime.datetime.fromisoformat(row["internaldate"]),
                                  row["size"])
    return view


def blob(archive: Path, sha256: str) -> bytes:
    return (archive / "objects" / sha256[:2] / f"{sha256[2:]}.eml").read_bytes()


def assert_archive_matches(client: imapclient.IMAPClient, archive: Path,
                           account: str = "alice") -> dict[str, dict[int, Seen]]:
    """Every folder the server has is in the archive, byte for byte, with flags and date."""
    expected = {name: items for name, items in server_view(client).items()}
    actual = archive_view(archive, account)
    for name, items in expected.items():
        assert actual.get(name, {}) == items, f"folder {name!r} differs"
    assert set(actual) <= set(expected)
    return expected


def row_count(archive: Path, table: str, where: str = "1=1") -> int:
    with manifest(archive) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0])


def tls_context(server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=server.ca_cert)


@contextlib.contextmanager
def round_trips(wire: Any) -> Iterator[list[int]]:
    """Counts the times `wire` (a source connection's) waited for an answer after sending
    while the block ran: its round trips, in the one-item list yielded, set at the end."""
    events: list[str] = []
    counted: list[int] = []
    with pytest.MonkeyPatch.context() as spying:
        spying.setattr(wire, "send", lambda command, _send=wire.send: (
            events.append("send"), _send(command))[1])
        spying.setattr(wire, "read", lambda _read=wire.read: (
            events.append("read"), _read())[1])
        try:
            yield counted
        finally:
            counted.append(sum(1 for pair in itertools.pairwise(events)
                               if pair == ("send", "read")))
