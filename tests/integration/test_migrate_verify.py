"""The verification that ends a `migrate`: it trusts the UIDs its own push was given
(APPENDUID) instead of fetching those messages' headers again, and still finds every
difference at the target. (The engine functions `migrate` calls, in this process, against
the Exchange look-alike.)"""

from __future__ import annotations

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.config import load
from migrator.engine.events import discard
from migrator.engine.push.job import push_account
from migrator.engine.verify.listings import Listings
from migrator.engine.verify.target import verify_target
from migrator.targets.control import TargetControl
from migrator.wire import imapconn
from tests.integration.push_world import (
    MAILBOX,
    fill_archive,
    message,
    placeholder_source,
    spy_uid_listings,
    target_block,
    write_world_config,
)
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]


@pytest.fixture
def listings():
    """Where the push keeps its re-check's listings (`migrate` does; these tests' push does
    only where a test asks for this fixture)."""
    return Listings()


@pytest.fixture
def pushed(o365, oauth_service, certs, tmp_path, monkeypatch, request):
    """Six messages in INBOX, two in Sent, pushed with the UIDs kept; header fetches spied."""
    messages = [message(n) for n in range(6)] + [message(n, folder="Sent") for n in (10, 11)]
    fill_archive(tmp_path / "archive", messages)
    config = write_world_config(tmp_path, placeholder_source(),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    account = load(config).account("bob")
    manifest = open_manifest(f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}")
    store = BlobStore(tmp_path / "archive")
    appended: dict[int, int] = {}
    kept = request.getfixturevalue("listings") if "listings" in request.fixturenames else None
    result = push_account(account, manifest, store, discard, appended=appended, listings=kept)
    assert result.counts["pushed"] == len(messages) == len(appended)
    fetched: list[tuple[str, object]] = []  # (folder, UIDs asked for): what index() fetches
    index = TargetControl.index

    def spy(self, name, only=None):
        fetched.append((name, None if only is None else set(only)))
        return index(self, name, only)

    monkeypatch.setattr(TargetControl, "index", spy)
    yield account, manifest, store, appended, messages, fetched
    manifest.close()


def test_appended_messages_are_present_without_fetching_their_headers(pushed):
    account, manifest, store, appended, messages, fetched = pushed

    report = verify_target(account, manifest, store, discard, appended=appended)

    assert report.ok and report.totals()["present"] == len(messages)
    assert report.totals()["at_target"] == len(messages)
    assert fetched == []  # every UID was one the push was given: nothing to fetch


def test_a_message_gone_duplicated_or_added_at_the_target_is_still_found(pushed, o365):
    account, manifest, store, appended, messages, fetched = pushed
    stored = o365.list_messages(MAILBOX, "INBOX")
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "INBOX", "uid", str(stored[0].uid))
    o365.seed(MAILBOX, "INBOX", [SeedMessage(messages[3].raw, (), messages[3].internaldate),
                                 SeedMessage(message(50, mid="stranger").raw)])

    report = verify_target(account, manifest, store, discard, appended=appended)

    totals = report.totals()
    assert not report.ok
    assert (totals["missing"], totals["duplicates"], totals["extras"]) == (1, 1, 1)
    inbox = next(f for f in report.folders if f.target == "INBOX")
    assert inbox.missing == ["<0@push.example> from INBOX"]
    assert inbox.at_target == 7
    # only the two UIDs the push was not given had their headers fetched
    assert [(name, len(uids or ())) for name, uids in fetched] == [("INBOX", 2)]


def test_without_the_push_uids_every_header_is_fetched(pushed):
    account, manifest, store, _, messages, fetched = pushed

    report = verify_target(account, manifest, store, discard)

    assert report.ok and report.totals()["present"] == len(messages)
    assert sorted(name for name, uids in fetched if uids is None) == ["INBOX", "Sent Items"]


def test_the_folders_uids_are_listed_in_one_round_trip_and_kept_apart(pushed, o365,
                                                                      monkeypatch):
    """Both folders' SELECT and UID SEARCH go out together; a message gone from the second
    folder is found there (the answers are not mixed up), and nothing is asked folder by
    folder."""
    account, manifest, store, appended, _, fetched = pushed
    sent_items = o365.list_messages(MAILBOX, "Sent Items")
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "Sent Items", "uid",
                 str(sent_items[-1].uid))
    asked = spy_uid_listings(monkeypatch)

    report = verify_target(account, manifest, store, discard, appended=appended)

    assert asked == [["INBOX", "Sent Items"]]
    by_folder = {check.target: check for check in report.folders}
    assert by_folder["INBOX"].ok and by_folder["INBOX"].present == 6
    assert by_folder["Sent Items"].missing == ["<11@push.example> from Sent"]
    assert by_folder["Sent Items"].at_target == 1
    assert fetched == []


def test_a_verify_takes_the_push_recheck_listings_where_status_proves_them_current(
        pushed, listings, monkeypatch):
    """`migrate`: its push's re-check has just listed both folders; nothing changed since,
    so the verify asks their STATUS and lists no UIDs again."""
    account, manifest, store, appended, messages, fetched = pushed
    assert sorted(listings.kept) == ["INBOX", "Sent Items"]
    asked = spy_uid_listings(monkeypatch)

    report = verify_target(account, manifest, store, discard, appended=appended,
                           listings=listings)

    assert asked == []
    assert report.ok and report.totals()["present"] == len(messages)
    assert report.totals()["at_target"] == len(messages)
    assert fetched == []


def test_a_folder_changed_after_the_recheck_is_listed_again(pushed, listings, o365,
                                                            monkeypatch):
    """A message expunged from Sent Items and one added to INBOX after the push's re-check
    (another client): both folders' STATUS differs from what the re-check listed, so both
    are listed again and the differences are found; a listing taken on trust would have
    reported both folders complete."""
    account, manifest, store, appended, _, fetched = pushed
    sent_items = o365.list_messages(MAILBOX, "Sent Items")
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "Sent Items", "uid",
                 str(sent_items[-1].uid))
    o365.seed(MAILBOX, "INBOX", [SeedMessage(message(50, mid="stranger").raw)])
    asked = spy_uid_listings(monkeypatch)

    report = verify_target(account, manifest, store, discard, appended=appended,
                           listings=listings)

    assert asked == [["INBOX", "Sent Items"]]
    by_folder = {check.target: check for check in report.folders}
    assert by_folder["Sent Items"].missing == ["<11@push.example> from Sent"]
    assert by_folder["INBOX"].extras == 1 and by_folder["INBOX"].present == 6
    assert [(name, len(uids or ())) for name, uids in fetched] == [("INBOX", 1)]


def test_only_the_changed_folder_is_listed_again(pushed, listings, o365, monkeypatch):
    account, manifest, store, appended, _, _ = pushed
    sent_items = o365.list_messages(MAILBOX, "Sent Items")
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "Sent Items", "uid",
                 str(sent_items[0].uid))
    asked = spy_uid_listings(monkeypatch)

    report = verify_target(account, manifest, store, discard, appended=appended,
                           listings=listings)

    assert asked == [["Sent Items"]]
    by_folder = {check.target: check for check in report.folders}
    assert by_folder["INBOX"].ok and by_folder["INBOX"].present == 6
    assert by_folder["Sent Items"].missing == ["<10@push.example> from Sent"]


def test_a_folder_that_cannot_be_selected_leaves_the_others_and_the_connection_sound(
        pushed, o365):
    account = pushed[0]
    control = TargetControl(account.target, account.name,
                            imapconn.tokens_for(account.target, account.name))
    try:
        found = control.uids_of(["INBOX", "No such folder", "Sent Items", "INBOX"])
        inbox = {m.uid for m in o365.list_messages(MAILBOX, "INBOX")}
        sent = {m.uid for m in o365.list_messages(MAILBOX, "Sent Items")}
        assert found["No such folder"] is None
        assert found["INBOX"] is not None and found["INBOX"][1] == inbox
        assert found["Sent Items"] is not None and found["Sent Items"][1] == sent
        assert found["Sent Items"][0].exists == len(sent)
        # nothing left unread: the next commands get their own answers
        assert control.uids("Sent Items")[1] == sent
        assert control.select("INBOX").exists == len(inbox)
        assert control.uids_of(["No such folder"]) == {"No such folder": None}
        assert control.uids("INBOX")[1] == inbox
    finally:
        control.close()


def test_the_first_layout_asks_namespace_and_list_in_one_round_trip(pushed, monkeypatch):
    """NAMESPACE and LIST go out together (`targets/folder_list.py`): one wait for the
    server where there were two; the layout is the one imapclient's calls gave."""
    import imaplib

    account = pushed[0]
    control = TargetControl(account.target, account.name,
                            imapconn.tokens_for(account.target, account.name))
    try:
        control.capabilities()  # signed in: only the layout's own round trips are counted
        events: list[str] = []
        command, get_line = imaplib.IMAP4._command, imaplib.IMAP4._get_line
        monkeypatch.setattr(imaplib.IMAP4, "_command", lambda self, *args: (
            events.append("send"), command(self, *args))[1])
        monkeypatch.setattr(imaplib.IMAP4, "_get_line", lambda self: (
            events.append("read"), get_line(self))[1])
        layout = control.layout()
        monkeypatch.undo()
        client = control.client()
        expected = {as_name(name) for flags, _, name in client.list_folders()
                    if b"\\Noselect" not in flags}
    finally:
        control.close()

    first_read = events.index("read")  # both sent before the first answer is read
    assert events[:first_read] == ["send", "send"] and "send" not in events[first_read:]
    assert (layout.delimiter, layout.prefix) == ("/", "")
    assert {folder.name for folder in layout.existing} == expected


def as_name(name) -> str:
    return name.decode() if isinstance(name, bytes) else name


def test_a_verify_on_the_push_connection_asks_namespace_once_and_lists_folders_again(
        pushed, o365, monkeypatch):
    """migrate's verify runs on its push's control connection: the session's NAMESPACE is
    known, so it is not asked again, but the folders are listed again, and what changed at
    the target after the push is found (a folder emptied: its messages are missing)."""
    from imapclient import IMAPClient

    from migrator.targets import control as control_module

    account, manifest, store, appended, _, _ = pushed
    asked: list[str] = []
    together, list_folders = control_module.namespace_and_folders, IMAPClient.list_folders

    def spy_together(client):
        asked.append("NAMESPACE+LIST")
        return together(client)

    def spy_list(self, *args, **kwargs):
        asked.append("LIST")
        return list_folders(self, *args, **kwargs)

    monkeypatch.setattr(control_module, "namespace_and_folders", spy_together)
    monkeypatch.setattr(IMAPClient, "list_folders", spy_list)
    control = TargetControl(account.target, account.name,
                            imapconn.tokens_for(account.target, account.name))
    try:
        control.layout()
        o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "Sent Items", "all")
        report = verify_target(account, manifest, store, discard, control=control,
                               appended=appended)
    finally:
        control.close()

    assert asked == ["NAMESPACE+LIST", "LIST"]
    by_folder = {check.target: check for check in report.folders}
    assert len(by_folder["Sent Items"].missing) == 2 and not report.ok
    assert by_folder["INBOX"].ok and by_folder["INBOX"].present == 6
