"""IMAP pull when things go wrong: dropped connections, throttling, expired tokens, Exchange's
empty FETCH answers; and Office 365 as a source (XOAUTH2 with a token from real MSAL)."""

from __future__ import annotations

import datetime
import hashlib
import json
import re

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    archive_view,
    assert_archive_matches,
    imap_client,
    manifest,
    office365_config,
    source_config,
)
from tests.world.mailstore import SeedMessage
from tests.world.proxy import Rewrite

pytestmark = pytest.mark.world
UTC = datetime.UTC
MAILBOX = "bob@contoso.test"


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def seed(server, user, folder, count, size=30_000, start=0):
    when = datetime.datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = [SeedMessage(b"Subject: m%d\r\nMessage-ID: <%d@x>\r\n\r\n" % (i, i)
                        + b"%08d\r\n" % i * (size // 10), ("\\Seen",), when)
            for i in range(start, start + count)]
    return server.seed(user, folder, body)


def summary(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def o365(office365_server, oauth_service):
    oauth_service.add_client("app", "secret")
    oauth_service.grant("app", MAILBOX)
    office365_server.add_user(MAILBOX)
    return office365_server


def o365_view(server):
    """{folder: {uid: (sha256, flags)}} as Dovecot stores what it serves."""
    view = {}
    for folder in server.folders(MAILBOX):
        try:
            items = server.list_messages(MAILBOX, folder)
        except FileNotFoundError:  # a parent folder that is only a directory ("Projekte")
            continue
        if items:
            view[folder] = {m.uid: (hashlib.sha256(m.raw).hexdigest(), frozenset(m.flags))
                            for m in items}
    return view


def o365_archive(tmp_path):
    return {folder: {uid: (seen.sha256, seen.flags) for uid, seen in items.items()}
            for folder, items in archive_view(tmp_path / "archive", "o365").items() if items}


def test_office365_source_with_xoauth2_and_no_condstore(o365, oauth_service, tmp_path):
    seed(o365, MAILBOX, "INBOX", 5)
    seed(o365, MAILBOX, "Sent Items", 3, start=10)
    seed(o365, MAILBOX, "Projekte/Übersicht", 2, start=20)
    config = office365_config(tmp_path, o365, oauth_service, MAILBOX)

    first = run_cli("-c", config, "--json", "pull", "o365")

    assert first.status == ExitStatus.OK, first.stderr
    assert o365_archive(tmp_path) == o365_view(o365)
    assert oauth_service.issued["client_credentials"] >= 1
    with manifest(tmp_path / "archive") as db:
        sent = db.execute("SELECT * FROM folders WHERE name = 'Sent Items'").fetchone()
        assert sent["special_use"] == "\\Sent" and sent["delimiter"] == "/"
    # Without CONDSTORE a flag change is invisible to STATUS: every run lists the flags
    o365.doveadm("flags", "add", "-u", MAILBOX, "\\Flagged", "mailbox", "INBOX", "uid", "2")
    second = run_cli("-c", config, "--json", "pull", "o365")
    assert summary(second)["flags_updated"] == 1 and "fetched" not in summary(second)
    assert o365_archive(tmp_path) == o365_view(o365)
    assert "secret" not in first.stderr + second.stderr


def test_expired_token_bye_reconnects_with_a_fresh_token(o365, oauth_service, fault_proxy,
                                                          certs, tmp_path):
    for index, folder in enumerate(("INBOX", "Archive", "A1", "A2", "A3", "A4", "A5", "A6")):
        seed(o365, MAILBOX, folder, 12, start=100 * index)
    # A session lives 0.5 s (Exchange: 60-90 min) and the transfer takes longer, so the next
    # EXAMINE or FETCH after that age meets "* BYE Session invalidated - AccessTokenExpired".
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs, bandwidth=2_000_000)
    proxy.bye(after_seconds=0.5)
    config = office365_config(tmp_path, o365, oauth_service, MAILBOX, port=proxy.port,
                              extra={"connections": 2})

    result = run_cli("-c", config, "pull", "o365")

    assert result.status == ExitStatus.OK, result.stderr
    assert "AccessTokenExpired); reconnecting" in result.stderr
    assert oauth_service.issued["client_credentials"] >= 2  # a fresh token after the BYE
    assert o365_archive(tmp_path) == o365_view(o365)


def test_connection_dropped_mid_literal_is_survived(source_server, fault_proxy, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "alice", "INBOX", 40)
    seed(source_server, "alice", "Archive", 20, start=100)
    proxy = fault_proxy(source_server.imap_port)
    proxy.drop_in_literal("FETCH", nth=(3, 25, 26), fraction=0.5)
    config = source_config(tmp_path, source_server, port=proxy.port)

    result = run_cli("-c", config, "--json", "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert len(proxy.events_of("literal_drop")) == 3
    assert summary(result)["fetched"] == 60
    assert_archive_matches(imap_client(source_server, "alice"), tmp_path / "archive")


def test_no_round_trip_per_message_and_unchanged_folders_cost_one_list_status(
        source_server, fault_proxy, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "alice", "INBOX", 300, size=2_000)
    seed(source_server, "alice", "Archive", 5, size=2_000, start=1000)
    proxy = fault_proxy(source_server.imap_port)
    config = source_config(tmp_path, source_server, port=proxy.port)

    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    fetches = proxy.stats["command UID FETCH"]
    assert fetches <= 4  # one listing per folder, one batch of bodies per folder

    before = dict(proxy.stats)
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    again = {k: v - before.get(k, 0) for k, v in proxy.stats.items() if v != before.get(k, 0)}
    again.pop("command CAPABILITY", None)  # imapclient's, before login
    # LIST-STATUS (RFC 5819): the folders and their STATUS in one round trip
    assert again == {"connections": 1, "command LOGIN": 1, "command LIST": 1,
                     "command LOGOUT": 1}  # no STATUS, no EXAMINE, no FETCH


def test_throttled_fetch_waits_as_told_and_carries_on(source_server, fault_proxy, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "alice", "INBOX", 30)
    proxy = fault_proxy(source_server.imap_port, delay=0.005)
    proxy.throttle("FETCH", nth=(1, 3), backoff_ms=300)  # the listing, then the bodies
    config = source_config(tmp_path, source_server, port=proxy.port)

    result = run_cli("-c", config, "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert len(proxy.events_of("throttle")) == 2
    assert_archive_matches(imap_client(source_server, "alice"), tmp_path / "archive")


# -- Exchange sometimes answers a FETCH for a listed UID with no body --------------------------
class EmptyFetches:
    """Answers the body FETCH of chosen UIDs the way Exchange sometimes does: `* n FETCH
    (UID u)` and no BODY[] (the first `times` times, or always). Shared by all connections:
    call it for each connection's Rewrite (FaultProxy's `rewrite=`)."""

    _BODY = re.compile(rb"^\* (\d+) FETCH \(.*\bUID (\d+)\b.*BODY\[\] \{(\d+)\}\r\n")

    def __init__(self, uids, times=None):
        self.uids = set(uids)
        self.times = times
        self.blanked = 0

    def __call__(self):
        return _EmptyFetchRewrite(self)

    def blank(self, response):
        match = self._BODY.match(response)
        if match and int(match[2]) in self.uids and (
                self.times is None or self.blanked < self.times):
            self.blanked += 1
            return b"* %s FETCH (UID %s)\r\n" % (match[1], match[2])
        return response


class _EmptyFetchRewrite(Rewrite):
    def __init__(self, fetches):
        self.fetches = fetches

    def server(self, unit):
        return self.fetches.blank(unit)


@pytest.fixture
def empty_fetch_proxy(fault_proxy):
    """Call with the upstream port and EmptyFetches arguments: (proxy, fetches)."""
    def make(upstream_port, *args, **kwargs):
        fetches = EmptyFetches(*args, **kwargs)
        return fault_proxy(upstream_port, rewrite=fetches), fetches

    return make


def test_an_empty_fetch_is_asked_again(source_server, empty_fetch_proxy, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "alice", "INBOX", 10)
    proxy, fetches = empty_fetch_proxy(source_server.imap_port, uids={4, 7}, times=2)

    result = run_cli("-c", source_config(tmp_path, source_server, port=proxy.port), "pull",
                     "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert fetches.blanked == 2
    assert_archive_matches(imap_client(source_server, "alice"), tmp_path / "archive")


def test_a_message_never_served_is_recorded_failed_and_retried_next_run(
        source_server, empty_fetch_proxy, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "alice", "INBOX", 10)
    proxy, fetches = empty_fetch_proxy(source_server.imap_port, uids={6})
    config = source_config(tmp_path, source_server, port=proxy.port)

    result = run_cli("-c", config, "--json", "pull", "alice")

    assert result.status == ExitStatus.PARTIAL
    assert "migrator: failed: alice: INBOX: UID 6: the server returned no data for it" \
        in result.stderr
    assert summary(result)["fetched"] == 9 and summary(result)["failed"] == 1
    assert sorted(archive_view(tmp_path / "archive")["INBOX"]) == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    assert fetches.blanked >= 3  # asked again before giving up

    fetches.uids.clear()  # the server behaves again: the next run fetches what failed
    again = run_cli("-c", config, "--json", "pull", "alice")
    assert again.status == ExitStatus.OK, again.stderr
    assert summary(again)["fetched"] == 1
    assert_archive_matches(imap_client(source_server, "alice"), tmp_path / "archive")
    with manifest(tmp_path / "archive") as db:
        assert db.execute("SELECT COUNT(*) FROM failures WHERE resolved_at IS NULL"
                          ).fetchone()[0] == 0
