"""Helpers for the push/migrate/auth tests: configs for the test world, an archive filled
straight through migrator's ingest, and an independent view of the target (doveadm and the
Maildir files, not migrator's reader) to compare with what the archive says."""

from __future__ import annotations

import datetime
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from tests.world import manifests
from tests.world.configs import Account, Config, Endpoint, OAuth
from tests.world.mailstore import as_imap_bytes

SECRET_ENV = "MIGRATOR_TEST_APP_SECRET"
SECRET = "app-Secret-9f3kQ"  # distinctive, so a leak is found by a plain search
SOURCE_PASSWORD_ENV = "MIGRATOR_TEST_SOURCE_PASSWORD"
SOURCE_PASSWORD = "src-Pw-72jdW"
MAILBOX = "bob@contoso.test"
SYSTEM_FLAGS = {"\\Seen", "\\Answered", "\\Flagged", "\\Draft"}
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts"}
# where the corpus folders land on the Exchange look-alike
O365_FOLDERS = {"INBOX": "INBOX", "Sent": "Sent Items", "Drafts": "Drafts",
                "Archive.2019": "Archive/2019", "Reisen.Überblick": "Reisen/Überblick"}


@dataclass(frozen=True)
class Expected:
    """A message as it must arrive: served bytes, flags, INTERNALDATE (UTC, seconds)."""

    sha256: str
    flags: frozenset[str]
    internaldate: datetime.datetime


def grant_mailbox(oauth, office365, mailbox: str = MAILBOX) -> None:
    oauth.add_client("app", SECRET)
    oauth.grant("app", mailbox)
    office365.add_user(mailbox)


def target_block(server_port: int, ca_cert: str, oauth, *, mailbox: str = MAILBOX,
                 extra: Mapping[str, Any] | None = None, flow: str = "client_credentials",
                 client_id: str = "app") -> Endpoint:
    """The Exchange look-alike as a target; `extra`: more target fields."""
    secret = f"env:{SECRET_ENV}" if flow == "client_credentials" else None
    target = Endpoint("office365", port=server_port, username=mailbox, ca_file=ca_cert,
                      timeout=20, oauth=OAuth(oauth.authority, oauth.ca_cert,
                                              client_id=client_id, flow=flow,
                                              client_secret=secret))
    return target.but(**(extra or {}))


def source_block(server, *, kind: str = "imap", user: str = "alice", port: int | None = None,
                 security: str = "plain") -> Endpoint:
    if port is None:
        port = server.pop3_port if kind == "pop3" else server.imap_port
    return Endpoint(kind, port=port, security=security, username=user,
                    password=f"env:{SOURCE_PASSWORD_ENV}", ca_file=server.ca_cert, timeout=20)


def write_world_config(tmp_path: Path, source: Endpoint, target: Endpoint | None,
                       account: str = "bob") -> Path:
    return Config(tmp_path / "archive", {account: Account(source, target)}).write(
        tmp_path / "migrator.toml")


def placeholder_source() -> Endpoint:
    """A source that is never contacted (push works from the archive alone)."""
    return Endpoint("imap", port=9, username="nobody", password=f"env:{SOURCE_PASSWORD_ENV}")


def fill_archive(archive: Path, messages, account: str = "bob") -> None:
    """Put corpus messages into the archive with migrator's own ingest (as a pull would)."""
    manifest = open_manifest(manifests.url(archive))
    store = BlobStore(archive)
    try:
        by_folder: dict[str, list] = {}
        for item in messages:
            by_folder.setdefault(item.folder, []).append(item)
        with manifest.session() as session:
            row = ensure_account(session, account, "imap")
            ids = {name: ensure_folder(session, row, name, delimiter=".",
                                       special_use=SPECIAL.get(name)).id for name in by_folder}
        for name, items in by_folder.items():
            fetched = [FetchedMessage(item.raw, uid=index + 1, uidvalidity=7,
                                      internaldate=item.internaldate.isoformat(),
                                      flags=tuple(item.flags))
                       for index, item in enumerate(items)]
            add_messages(manifest, store, ids[name], fetched)
    finally:
        manifest.close()


def expected_at_target(messages, folders: dict[str, str] = O365_FOLDERS,
                       served: Callable[[bytes], bytes] = as_imap_bytes
                       ) -> dict[str, Counter[Expected]]:
    """{target folder: multiset of Expected} for corpus-like messages; `served`: the bytes
    the target serves for an APPENDed message (the target server's profile says)."""
    wanted: dict[str, Counter[Expected]] = {}
    for item in messages:
        flags = frozenset(f for f in item.flags if f in SYSTEM_FLAGS or not f.startswith("\\"))
        when = item.internaldate.astimezone(datetime.UTC).replace(microsecond=0)
        key = Expected(hashlib.sha256(served(item.raw)).hexdigest(), flags, when)
        wanted.setdefault(folders[item.folder], Counter())[key] += 1
    return wanted


def target_view(server, user: str = MAILBOX) -> dict[str, Counter[Expected]]:
    """{folder: multiset of Expected} of what the target server stores."""
    view: dict[str, Counter[Expected]] = {}
    for folder in server.folders(user):
        stored = server.list_messages(user, folder)
        if stored:
            view[folder] = Counter(Expected(hashlib.sha256(m.raw).hexdigest(),
                                            frozenset(m.flags), m.internaldate)
                                   for m in stored)
    return view


def assert_target_matches(server, messages, user: str = MAILBOX,
                          folders: dict[str, str] = O365_FOLDERS) -> None:
    """Every message in the right folder, once, with its bytes (as `server` serves them),
    flags and INTERNALDATE."""
    expected = expected_at_target(messages, folders, server.served)
    actual = target_view(server, user)
    assert set(actual) == set(expected), (sorted(actual), sorted(expected))
    for folder, wanted in expected.items():
        got = actual[folder]
        assert got == wanted, (f"{folder}: missing {list((wanted - got).elements())[:3]}, "
                               f"unexpected {list((got - wanted).elements())[:3]}")


def target_count(server, user: str = MAILBOX) -> int:
    return sum(len(server.list_messages(user, folder)) for folder in server.folders(user))


def push_states(archive: Path) -> Counter[str]:
    with manifests.connect(archive) as db:
        return Counter(dict(db.execute("SELECT state, COUNT(*) FROM pushes GROUP BY state")))


def run_rows(archive: Path, command: str) -> list[tuple[str, str]]:
    with manifests.connect(archive) as db:
        return list(db.execute("SELECT outcome, counts FROM runs WHERE command = ? ORDER BY id",
                               (command,)))


def leaked(secrets: list[str], *texts: str | bytes) -> list[str]:
    """The secrets (of at least 8 characters) that appear in any of the texts."""
    found = []
    for secret in secrets:
        if len(secret) < 8:
            continue
        for text in texts:
            data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
            if secret.encode() in data:
                found.append(secret[:12] + "...")
                break
    return found


def issued_tokens(oauth) -> list[str]:
    """Every access token the test identity service handed out (its private record)."""
    return list(oauth._tokens)


def message(n: int, size: int = 2000, mid: str | None = None, folder: str = "INBOX",
            flags: tuple[str, ...] = ("\\Seen",)):
    """A small corpus-like message (attributes as CorpusMessage)."""
    from tests.world.corpus import CorpusMessage

    header = (f"From: a@example.org\r\nSubject: push test {n}\r\n"
              + (f"Message-ID: <{mid or n}@push.example>\r\n" if mid != "" else "")
              + "\r\n").encode()
    body = (b"line %d of the message body\r\n" % n) * max(1, size // 28)
    when = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.UTC) + datetime.timedelta(
        minutes=n)
    return CorpusMessage(header + body, folder, flags, when, frozenset())


def spy_uid_listings(monkeypatch: Any) -> list[list[str]]:
    """What the target's UIDs are asked for with, in order: each `uids_of` group, and
    `["alone: FOLDER"]` for each folder asked for by itself (`uids`)."""
    from migrator.targets.control import TargetControl

    asked: list[list[str]] = []
    uids_of, uids = TargetControl.uids_of, TargetControl.uids

    def many(self: TargetControl, names: Any) -> Any:
        asked.append(list(names))
        return uids_of(self, names)

    def one(self: TargetControl, name: str) -> Any:
        asked.append([f"alone: {name}"])
        return uids(self, name)

    monkeypatch.setattr(TargetControl, "uids_of", many)
    monkeypatch.setattr(TargetControl, "uids", one)
    return asked


def spy_folder_readying(monkeypatch: Any) -> list[tuple[str, list[Any]]]:
    """How target folders are made ready, in order: ("create_all", [(path, role)...]) and
    ("select_all", [folder...]) for folders done together, ("create", [path]) and
    ("select", [folder]) for one done alone."""
    from migrator.targets.control import TargetControl

    asked: list[tuple[str, list[Any]]] = []
    for name in ("create_all", "select_all", "create", "select"):
        original = getattr(TargetControl, name)

        def spy(self: TargetControl, what: Any, *args: Any, _name: str = name,
                _original: Any = original) -> Any:
            asked.append((_name, list(what) if _name.endswith("_all") else [what]))
            return _original(self, what, *args)

        monkeypatch.setattr(TargetControl, name, spy)
    return asked
