"""Helpers for the POP3 pull tests: configs, server variants, POP3 faults for the test world's
FaultProxy, and independent views.

What the server holds is read with plain imapclient/poplib and doveadm, what the archive
holds with plain DB-API and file reads, never through migrator's own reader or models.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import poplib
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import imapclient

from tests.world import manifests
from tests.world.configs import Account, Config, Endpoint
from tests.world.dovecot import Office365Server, SourceServer, _listener
from tests.world.mailstore import SeedMessage
from tests.world.net import HOST, free_port
from tests.world.proxy import Cut, Rewrite

USER = "bob"
PASSWORD = "pop3-Pa55word"
ROOT = Path(__file__).resolve().parents[2]


# -- server variants ---------------------------------------------------------------------------
class TunedSourceServer(SourceServer):
    """The source server with some settings changed (e.g. POP3 session locks, UIDL format)."""

    def __init__(self, certs, settings: dict[str, str], **kwargs) -> None:
        super().__init__(certs, **kwargs)
        self.settings = settings

    def _profile_config(self) -> str:
        text = super()._profile_config()
        for key, value in self.settings.items():
            line = f"{key} = {value}"
            pattern = re.compile(rf"^{re.escape(key)} = .*$", re.MULTILINE)
            text = pattern.sub(line, text) if pattern.search(text) else f"{line}\n{text}"
        return text


class Pop3Office365Server(Office365Server):
    """The Exchange look-alike with POP3S too: Exchange Online's POP3 takes XOAUTH2 only."""

    protocols = "imap pop3"

    def _allocate_ports(self) -> None:
        super()._allocate_ports()
        self.pop3s_port = free_port()

    def _ports(self) -> list[int]:
        return [*super()._ports(), self.pop3s_port]

    def _profile_config(self) -> str:
        return super()._profile_config() + (
            "service pop3-login {\n  chroot =\n  inet_listener pop3 {\n    port = 0\n  }\n"
            + _listener("pop3s", self.pop3s_port, ssl=True) + "}\n")


class NoUidl(Rewrite):
    """A server without UIDL: the command is renamed on its way, so the server refuses it."""

    def client(self, unit: bytes) -> bytes:
        return b"X" + unit if unit[:4].upper() == b"UIDL" else unit


class CutBeforeQuit(Rewrite):
    """The connection is cut when the client sends QUIT, which never arrives, so the server
    deletes nothing."""

    def client(self, unit: bytes) -> bytes:
        if unit[:4].upper() == b"QUIT":
            raise Cut("QUIT")
        return unit


class LoseQuitReply(Rewrite):
    """QUIT reaches the server (which commits its deletions), but its +OK never reaches the
    client: the connection is cut there."""

    def __init__(self) -> None:
        self.quit_sent = False

    def client(self, unit: bytes) -> bytes:
        self.quit_sent = self.quit_sent or unit[:4].upper() == b"QUIT"
        return unit

    def server(self, unit: bytes) -> bytes:
        if self.quit_sent and unit.startswith(b"+OK"):
            raise Cut("the QUIT reply")
        return unit


# -- configs -------------------------------------------------------------------------------
def password_file(tmp_path: Path, password: str = PASSWORD) -> Path:
    path = tmp_path / "pop3.secret"
    path.write_text(password + "\n", encoding="utf-8")
    return path


def pop3_config(tmp_path: Path, server, *, security: str = "plain", port: int | None = None,
                delete: str | None = None, days: int = 0, target: bool = False,
                extra: Mapping[str, Any] | None = None, password: str = PASSWORD,
                user: str = USER, ca_file: bool = True,
                target_block: Endpoint | None = None) -> Path:
    """A config pulling `user` of the source test server over POP3; `target` adds a target
    that is never contacted, `target_block` a real one; `extra`: more source fields."""
    if port is None:
        port = server.pop3s_port if security == "tls" else server.pop3_port
    secret = f"file:{password_file(tmp_path, password)}"
    source = Endpoint("pop3", port=port, security=security, username=user, password=secret,
                      ca_file=server.ca_cert if ca_file else None, timeout=20,
                      delete=delete, delete_after_days=days if delete else None)
    if target:
        target_block = Endpoint("imap", port=1, username=f"{user}@target", password=secret)
    account = Account(source.but(**(extra or {})), target_block)
    return Config(tmp_path / "archive", {user: account}).write(tmp_path / "migrator.toml")


# -- what the server holds -------------------------------------------------------------------
def imap_client(server, user: str = USER) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient(server.host, server.imap_port, ssl=False, timeout=20)
    client.login(user, PASSWORD)
    return client


def imap_state(server, user: str = USER) -> dict[int, tuple[frozenset[str], bytes]]:
    """INBOX as IMAP shows it: {uid: (flags, BODY[])}, read without setting \\Seen."""
    client = imap_client(server, user)
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        items = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return {uid: (frozenset(f.decode() for f in data[b"FLAGS"]) - {"\\Recent"},
                      data[b"BODY[]"]) for uid, data in items.items()}
    finally:
        client.logout()


def as_pop3(imap_body: bytes) -> bytes:
    """What RETR sends for a message: POP3 lines all end in a line break, so one is added
    to a message whose last line has none (CRLF, as the server sends it)."""
    return imap_body if imap_body.endswith(b"\n") else imap_body + b"\r\n"


def server_uidls(server, user: str = USER, port: int | None = None) -> dict[str, int]:
    """{UIDL: size} by plain poplib (its own session, ended without deleting anything)."""
    pop = poplib.POP3(HOST, port or server.pop3_port, timeout=20)
    try:
        pop.user(user)
        pop.pass_(PASSWORD)
        uidls = dict(line.decode().split() for line in pop.uidl()[1])
        sizes = dict(line.decode().split() for line in pop.list()[1])
        return {uidl: int(sizes[number]) for number, uidl in uidls.items()}
    finally:
        pop.quit()


def expected_archive(server, user: str = USER) -> dict[str, list[bytes]]:
    """{UIDL: [bytes RETR sends]} from IMAP (BODY.PEEK[]) and poplib's UIDL, not migrator."""
    bodies = [as_pop3(body) for _, (_, body) in sorted(imap_state(server, user).items())]
    uidls = list(server_uidls(server, user))  # in message-number order, which is UID order
    assert len(uidls) == len(bodies)
    return {uidl: [body] for uidl, body in zip(uidls, bodies, strict=True)}


def seed(server, messages: Iterable[bytes], user: str = USER) -> list[int]:
    return server.seed(user, "INBOX", [SeedMessage(raw) for raw in messages])


def message(n: int, size: int = 1500, extra: str = "") -> bytes:
    head = (f"From: sender{n}@example.org\r\nTo: bob@example.org\r\nSubject: message {n}\r\n"
            f"Message-ID: <{n}.pop3@example.org>\r\n{extra}\r\n").encode()
    return head + (b"body of %d\r\n" % n) * max(1, size // 12)


# -- what the archive holds --------------------------------------------------------------------
def manifest(archive: Path) -> contextlib.AbstractContextManager[Any]:
    """The manifest read with plain DB-API, SQLite or PostgreSQL (closed afterwards)."""
    return manifests.connect(archive)


def blob_path(archive: Path, sha256: str) -> Path:
    return archive / "objects" / sha256[:2] / f"{sha256[2:]}.eml"


def archive_rows(archive: Path, account: str = USER) -> list[Any]:
    with manifest(archive) as db:
        return db.execute(
            "SELECT f.name AS folder, m.* FROM messages m JOIN folders f ON f.id = m.folder_id "
            "JOIN accounts a ON a.id = f.account_id WHERE a.name = ? ORDER BY m.id",
            (account,)).fetchall()


def archived_bytes(archive: Path, account: str = USER) -> dict[str, list[bytes]]:
    """{UIDL: [content, ...]}; every blob re-read and checked against its name and size."""
    view: dict[str, list[bytes]] = {}
    for row in archive_rows(archive, account):
        data = blob_path(archive, row["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], "blob does not match its name"
        assert len(data) == row["size"]
        assert row["folder"] == "INBOX"
        view.setdefault(row["uidl"], []).append(data)
    return view


def blob_files(archive: Path) -> list[Path]:
    objects = archive / "objects"
    if not objects.is_dir():
        return []
    return sorted(path for path in objects.glob("*/*") if not path.name.startswith("."))


def deletions(archive: Path) -> list[Any]:
    with manifest(archive) as db:
        return db.execute(
            "SELECT d.*, m.uidl, m.sha256 FROM source_deletions d "
            "JOIN messages m ON m.id = d.archive_message_id ORDER BY d.id").fetchall()


def count(archive: Path, table: str) -> int:
    with manifest(archive) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# -- running migrator in its own process (for kill -9) ----------------------------------------
def run_process(config: Path, *args: str, kill_at: str | None = None, batch: int | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m migrator -c CONFIG pull ...` in a child; `kill_at` arms the engine's hook."""
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_TEST_KILL_AT"}
    if kill_at:
        env["MIGRATOR_TEST_KILL_AT"] = kill_at
    prelude = "import sys; sys.argv[0] = 'migrator'\n"
    if batch is not None:
        prelude += f"import migrator.engine.pop3.pull as p; p.BATCH_MESSAGES = {batch}\n"
    code = prelude + "from migrator.cli.main import main\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, "-c", str(config), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
