"""Re-runs in O(what changed): verify (and push's re-check) pass over a target folder only
when neither its STATUS nor the archive's side changed since verify last found it complete.

Soundness first: after a verified push, each change below must still make a plain `verify`
fail, or at least compare the folder again (`folders_skipped` in its JSON report, and the
SELECTs and FETCHes counted on the wire).
"""

from __future__ import annotations

import json

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.engine import migrate_probe
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    MAILBOX,
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    fill_archive,
    message,
    placeholder_source,
    target_block,
    write_world_config,
)
from tests.integration.test_migrate_noop_probe import timeless
from tests.world import manifests
from tests.world.configs import Endpoint
from tests.world.mailstore import SeedMessage
from tests.world.proxy import Rewrite

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets"),
              pytest.mark.manifest_databases]

FOLDERS = ("INBOX", "Work")


class Commands:
    """Counts the commands clients send through the proxy (UID FETCH as "UID FETCH"), and
    which connection sent them."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.connections: list[list[str]] = []

    def __call__(self) -> Rewrite:
        outer = self
        mine: list[str] = []
        self.connections.append(mine)

        class Count(Rewrite):
            def client(self, unit: bytes) -> bytes:
                words = unit.split(b" ", 3)
                if len(words) > 1 and words[0].isalnum():
                    name = words[1].upper()
                    if name == b"UID" and len(words) > 2:
                        name += b" " + words[2].upper()
                    command = name.decode("ascii", "replace").strip()
                    outer.seen.append(command)
                    mine.append(command)
                return unit

        return Count()

    def take(self) -> list[str]:
        seen, self.seen, self.connections = self.seen, [], []
        return seen


def archive_one_more(archive, folder: str, item) -> None:
    """One more message in an archived folder, as a later pull would add it."""
    manifest = open_manifest(manifests.url(archive))
    try:
        with manifest.session() as session:
            account = ensure_account(session, "bob", "imap")
            folder_id = ensure_folder(session, account, folder, delimiter=".").id
        add_messages(manifest, BlobStore(archive), folder_id, [FetchedMessage(
            item.raw, uid=1000, uidvalidity=7, internaldate=item.internaldate.isoformat(),
            flags=tuple(item.flags))])
    finally:
        manifest.close()


def corpus():
    return ([message(n) for n in range(6)] + [message(n, mid="") for n in range(6, 8)]
            + [message(n, folder="Work") for n in range(10, 15)])


def verify(config, *extra):
    result = run_cli("-c", config, "verify", "bob", "--json", *extra)
    assert "Traceback" not in result.stderr
    return result, (json.loads(result.stdout) if result.stdout.strip() else {})


def o365_world(tmp_path, o365, oauth_service, certs):
    """A pushed and verified archive on the Exchange look-alike (no CONDSTORE)."""
    fill_archive(tmp_path / "archive", corpus())
    config = write_world_config(tmp_path, placeholder_source(),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    assert run_cli("-c", config, "push", "bob").status == ExitStatus.OK
    first, report = verify(config)
    assert first.status == ExitStatus.OK, first.stderr
    assert report["folders_skipped"] == 0
    again, report = verify(config)
    assert again.status == ExitStatus.OK and report["folders_skipped"] == len(FOLDERS)
    return config


@pytest.fixture
def imap_world(source_server, fault_proxy, tmp_path):
    """The same on a plain IMAP target (Dovecot, CONDSTORE offered), through a proxy that
    counts commands."""
    source_server.add_user("carol", SOURCE_PASSWORD)
    fill_archive(tmp_path / "archive", corpus())
    commands = Commands()
    proxy = fault_proxy(source_server.imap_port, rewrite=commands)
    target = Endpoint("imap", port=proxy.port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    config = write_world_config(tmp_path, placeholder_source(), target)
    assert run_cli("-c", config, "push", "bob").status == ExitStatus.OK
    assert verify(config)[0].status == ExitStatus.OK
    commands.take()
    return config, commands


def test_a_no_op_verify_compares_nothing_and_full_compares_everything(imap_world):
    config, commands = imap_world

    result, report = verify(config)

    assert result.status == ExitStatus.OK, result.stderr
    assert report["folders_skipped"] == len(FOLDERS)
    assert report["present"] == 13 and report["expected"] == 13  # figures of the last compare
    seen = commands.take()
    assert "STATUS" in seen
    assert not {"SELECT", "EXAMINE", "FETCH", "UID FETCH", "SEARCH", "UID SEARCH"} & set(seen)

    full, report = verify(config, "--full")
    assert full.status == ExitStatus.OK and report["folders_skipped"] == 0
    assert commands.take().count("SELECT") >= len(FOLDERS)


def test_a_no_op_push_after_verify_rechecks_no_folder(imap_world):
    config, commands = imap_world

    again = run_cli("-c", config, "push", "bob")

    assert again.status == ExitStatus.OK, again.stderr
    assert "pushed 0, already there 0" in again.stdout
    assert not {"SELECT", "SEARCH", "UID SEARCH", "FETCH"} & set(commands.take())


def test_a_message_deleted_at_the_target_fails_verify_and_push_sends_it_again(
        o365, oauth_service, certs, tmp_path):
    config = o365_world(tmp_path, o365, oauth_service, certs)
    gone = o365.list_messages(MAILBOX, "Work")[1]
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "Work", "uid", str(gone.uid))

    result, report = verify(config)

    assert result.status == ExitStatus.VERIFY
    assert report["missing"] == 1 and report["folders_skipped"] == 1  # INBOX unchanged
    healed = run_cli("-c", config, "push", "bob")
    assert "pushed 1, already there 0" in healed.stdout, healed.stdout + healed.stderr
    assert verify(config)[0].status == ExitStatus.OK


def test_a_folder_deleted_at_the_target_fails_verify(o365, oauth_service, certs, tmp_path):
    config = o365_world(tmp_path, o365, oauth_service, certs)
    o365.doveadm("mailbox", "delete", "-u", MAILBOX, "-s", "Work")

    result, report = verify(config)

    assert result.status == ExitStatus.VERIFY
    assert report["missing_folders"] == 1 and report["missing"] == 5


def test_an_expunge_and_an_append_keeping_the_count_fail_verify(o365, oauth_service, certs,
                                                                 tmp_path):
    config = o365_world(tmp_path, o365, oauth_service, certs)
    before = o365.list_messages(MAILBOX, "INBOX")
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "INBOX", "uid", str(before[0].uid))
    stranger = message(99)
    o365.seed(MAILBOX, "INBOX", [SeedMessage(stranger.raw, (), stranger.internaldate)])
    assert len(o365.list_messages(MAILBOX, "INBOX")) == len(before)  # MESSAGES unchanged

    result, report = verify(config)

    assert result.status == ExitStatus.VERIFY
    assert report["missing"] == 1 and report["extras"] == 1


def test_a_changed_uidvalidity_compares_the_folder_again(o365, oauth_service, certs, tmp_path):
    config = o365_world(tmp_path, o365, oauth_service, certs)
    validity = o365.mailbox_status(MAILBOX, "INBOX", "uidvalidity")
    o365.doveadm("mailbox", "update", "-u", MAILBOX, "--uid-validity", str(validity + 1000),
                 "INBOX")

    result, report = verify(config)

    assert result.status == ExitStatus.OK  # every message found again, by identity
    assert report["folders_skipped"] == 1
    assert [f["target"] for f in report["folders"] if not f["skipped"]] == ["INBOX"]


def test_a_damaged_blob_fails_as_it_did_before(o365, oauth_service, certs, tmp_path):
    """verify ACCOUNT reads the blobs of messages without a Message-ID (found by a
    fingerprint of their bytes): one damaged still fails it; `verify --archive` re-hashes
    every blob and fails for any."""
    config = o365_world(tmp_path, o365, oauth_service, certs)
    store = BlobStore(tmp_path / "archive")
    with manifests.connect(tmp_path / "archive") as db:
        (anonymous,) = db.execute("SELECT sha256 FROM messages WHERE message_id IS NULL "
                                  "ORDER BY id LIMIT 1").fetchone()
        (named,) = db.execute("SELECT sha256 FROM messages WHERE message_id IS NOT NULL "
                              "ORDER BY id LIMIT 1").fetchone()
    for sha in (anonymous, named):
        path = store.path(sha)
        path.write_bytes(path.read_bytes().replace(b"Subject: push test", b"Subject: damaged!!"))

    result, report = verify(config)

    assert result.status == ExitStatus.VERIFY
    assert report["missing"] >= 1 and report["folders_skipped"] == 1  # Work holds neither
    assert run_cli("-c", config, "verify", "--archive").status == ExitStatus.VERIFY


def test_a_new_archived_message_is_compared(o365, oauth_service, certs, tmp_path):
    config = o365_world(tmp_path, o365, oauth_service, certs)
    archive_one_more(tmp_path / "archive", "Work", message(40))

    result, report = verify(config)

    assert result.status == ExitStatus.VERIFY
    assert report["missing"] == 1 and report["folders_skipped"] == 1


def test_a_flag_change_is_seen_where_condstore_is_offered_only(imap_world, source_server):
    config, _ = imap_world
    stored = source_server.list_messages("carol", "Work")
    source_server.doveadm("flags", "add", "-u", "carol", "\\Flagged", "mailbox", "Work", "uid",
                          str(stored[0].uid))

    result, report = verify(config)

    assert result.status == ExitStatus.OK
    assert [f["target"] for f in report["folders"] if not f["skipped"]] == ["Work"]


def test_a_flag_change_goes_unnoticed_without_condstore(o365, oauth_service, certs, tmp_path):
    """Exchange offers no HIGHESTMODSEQ: a flag changed there leaves every folder unchanged
    to a plain verify (which compares no flags anyway); --full compares every folder."""
    config = o365_world(tmp_path, o365, oauth_service, certs)
    stored = o365.list_messages(MAILBOX, "Work")
    o365.doveadm("flags", "add", "-u", MAILBOX, "\\Flagged", "mailbox", "Work", "uid",
                 str(stored[0].uid))

    assert verify(config)[1]["folders_skipped"] == len(FOLDERS)
    assert verify(config, "--full")[1]["folders_skipped"] == 0


def test_a_no_op_migrate_signs_in_once_and_compares_nothing(source_server, fault_proxy,
                                                            tmp_path, monkeypatch,
                                                            manifest_database):
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.add_user("carol", SOURCE_PASSWORD)
    for name, items in (("INBOX", [message(1), message(2, mid="")]),
                        ("Work", [message(3, folder="Work")])):
        source_server.seed("alice", name, [SeedMessage(m.raw, m.flags, m.internaldate)
                                           for m in items])
    commands = Commands()
    proxy = fault_proxy(source_server.imap_port, rewrite=commands)
    source = Endpoint("imap", port=source_server.imap_port, security="plain", username="alice",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    target = Endpoint("imap", port=proxy.port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    config = write_world_config(tmp_path, source, target)
    first = run_cli("-c", config, "migrate", "bob")
    assert first.status == ExitStatus.OK, first.stderr
    commands.take()

    with monkeypatch.context() as full_path:  # the full path (the no-op probe declining)
        full_path.setattr(migrate_probe, "probe_migrate", lambda *args: None)
        again = run_cli("-c", config, "--json", "migrate", "bob")

    assert again.status == ExitStatus.OK, again.stderr
    listing = [c for c in commands.connections if "LIST" in c]
    assert len(listing) == 1 and listing[0].count("LIST") == 2  # push, then verify, on one
    seen = commands.take()
    assert not {"SELECT", "EXAMINE", "FETCH", "UID FETCH", "UID SEARCH", "APPEND"} & set(seen)
    probed = run_cli("-c", config, "--json", "migrate", "bob")
    assert timeless(probed) == timeless(again)  # how long a push took is no difference
    if manifest_database == "sqlite":  # settled by the no-op probe: one round trip after LOGIN
        assert commands.connections[-1] == [
            "LOGIN", "NAMESPACE", "LIST", "STATUS", "STATUS", "LOGOUT"]
    assert len(source_server.list_messages("carol", "INBOX")) == 2


def spy_header_fetches(monkeypatch) -> list[tuple[str, set[int] | None]]:
    """(folder, UIDs asked for, None: all) of each header fetch verify makes at the target."""
    from migrator.targets.control import TargetControl

    fetched: list[tuple[str, set[int] | None]] = []
    index = TargetControl.index

    def spy(self, name, only=None):
        fetched.append((name, None if only is None else set(only)))
        return index(self, name, only)

    monkeypatch.setattr(TargetControl, "index", spy)
    return fetched


def push_one_more(tmp_path, config, folder: str, item) -> None:
    archive_one_more(tmp_path / "archive", folder, item)
    pushed = run_cli("-c", config, "push", "bob")
    assert "pushed 1," in pushed.stdout, pushed.stdout + pushed.stderr


def test_a_changed_folder_fetches_the_headers_of_what_came_since_only(
        imap_world, source_server, tmp_path, monkeypatch):
    """After a complete verify, one more message pushed to Work: the next verify lists
    Work's UIDs and fetches the headers of the new one only (the others' UIDs are those the
    last verify confirmed); INBOX is not compared. An anonymous message would be fetched and
    its blob read again (test_a_damaged_blob_fails_as_it_did_before)."""
    config, commands = imap_world
    push_one_more(tmp_path, config, "Work", message(50, folder="Work"))
    newest = max(m.uid for m in source_server.list_messages("carol", "Work"))
    fetched = spy_header_fetches(monkeypatch)
    commands.take()

    result, report = verify(config)

    assert result.status == ExitStatus.OK, result.stderr
    assert fetched == [("Work", {newest})]
    seen = commands.take()  # the UIDs listed once: the new one's headers fetched by UID
    assert seen.count("UID SEARCH") == 1 and seen.count("UID FETCH") == 1
    by_folder = {f["target"]: f for f in report["folders"]}
    assert by_folder["Work"]["present"] == 6 and not by_folder["Work"]["skipped"]
    assert by_folder["INBOX"]["skipped"]
    # and what is gone is still found: one of the earlier messages expunged
    source_server.doveadm("expunge", "-u", "carol", "mailbox", "Work", "uid",
                          str(min(m.uid for m in source_server.list_messages("carol", "Work"))))
    gone, report = verify(config)
    assert gone.status == ExitStatus.VERIFY and report["missing"] == 1


def test_a_folder_where_a_message_was_found_by_identity_is_fetched_whole_next_time(
        imap_world, tmp_path, monkeypatch):
    """A done row without its target UID (a server that gave no APPENDUID) is found by
    identity: the folder is complete, but its record does not vouch for recorded UIDs, so
    after the next push there the whole folder's headers are fetched again."""
    config, _ = imap_world
    with manifests.connect(tmp_path / "archive") as db:
        db.execute("UPDATE pushes SET target_uid = NULL WHERE id = "
                   "(SELECT MIN(id) FROM pushes WHERE target_folder = 'Work')")
    first, _ = verify(config)
    assert first.status == ExitStatus.OK, first.stderr
    push_one_more(tmp_path, config, "Work", message(51, folder="Work"))
    fetched = spy_header_fetches(monkeypatch)

    result, report = verify(config)

    assert result.status == ExitStatus.OK, result.stderr
    assert fetched == [("Work", None)]
    assert {f["target"]: f["present"] for f in report["folders"]}["Work"] == 6


def test_a_push_after_a_pull_lists_the_folder_once_after_sending_not_before(
        imap_world, tmp_path):
    """A message pulled into a verified folder changes only the archive side: the push's
    re-check before sending passes over the folder (the last verify vouched for every done
    row's UID and the target's STATUS is the same), and only the check after sending lists
    its UIDs."""
    config, commands = imap_world

    push_one_more(tmp_path, config, "Work", message(52, folder="Work"))

    assert commands.take().count("UID SEARCH") == 1
    assert verify(config)[0].status == ExitStatus.OK


def test_a_full_path_migrate_whose_slow_pull_brings_nothing_starts_no_push_work(
        source_server, fault_proxy, tmp_path, monkeypatch):
    """The push reaches its first round while a slow pull (0.3 s each way) still plans: it
    waits for the pull to find mail or end, so a pull that brings nothing leaves the target
    with no SELECT and no APPEND (the workers' early logins are only logged out)."""
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.add_user("carol", SOURCE_PASSWORD)
    for name, item in (("INBOX", message(1)), ("Work", message(3, folder="Work"))):
        source_server.seed("alice", name, [SeedMessage(item.raw, item.flags, item.internaldate)])
    commands = Commands()
    target_proxy = fault_proxy(source_server.imap_port, rewrite=commands)
    slow_source = fault_proxy(source_server.imap_port, delay=0.3, imap=False)
    source = Endpoint("imap", port=slow_source.port, security="plain", username="alice",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    target = Endpoint("imap", port=target_proxy.port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    config = write_world_config(tmp_path, source, target)
    assert run_cli("-c", config, "migrate", "bob").status == ExitStatus.OK
    commands.take()
    monkeypatch.setattr(migrate_probe, "probe_migrate", lambda *args: None)

    again = run_cli("-c", config, "migrate", "bob")

    assert again.status == ExitStatus.OK, again.stderr
    assert "pulled 0, pushed 0" in again.stdout
    assert not {"SELECT", "APPEND"} & set(commands.take())
