"""A delta pass (one new message after a full first pass) into the same Exchange mailbox:
verify must say exactly how the user's mailbox differs, also for a message whose
INTERNALDATE lies ahead, which the target does not keep (Dovecot stores the APPEND's own
time for a date over two hours ahead; its Date header does not matter).
"""

from __future__ import annotations

import datetime
import json

import pytest

from migrator.errors import ExitStatus
from migrator.targets import identity
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    MAILBOX,
    SECRET,
    source_block,
    target_block,
    write_world_config,
)
from tests.integration.test_batch import HEADER, PASSWORD, PASSWORD_ENV, base_config
from tests.integration.test_migrate import seed_source
from tests.world.corpus import generate
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]

AHEAD = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(days=43)
DATE_HEADER = AHEAD.strftime("%a, %d %b %Y %H:%M:%S +0000")  # equal to its INTERNALDATE
ZONE = datetime.timezone(datetime.timedelta(hours=1))
OTHER_ZONE = datetime.timezone(datetime.timedelta(hours=-7))
NEWS_ID = "<delta.alice@old.example>"


def news(date_header: str | None = DATE_HEADER,
         internaldate: datetime.datetime = AHEAD) -> SeedMessage:
    date = f"Date: {date_header}\r\n" if date_header else ""
    raw = ("From: news@example.org\r\nTo: alice@old.example\r\nSubject: news for alice\r\n"
           f"{date}Message-ID: {NEWS_ID}\r\n\r\nnew since the last pass\r\n")
    return SeedMessage(raw.encode(), (), internaldate)


def first_corpus():
    return generate(seed=1000, count=2, max_size=20000, stdlib=False)


def verify(config) -> tuple[ExitStatus, dict]:
    result = run_cli("-c", config, "verify", "bob", "--json", "--full")
    assert "Traceback" not in result.stderr
    return result.status, json.loads(result.stdout)


def inbox_news(o365) -> list:
    return [m for m in o365.list_messages(MAILBOX, "INBOX") if NEWS_ID.encode() in m.raw]


def delta_world(source_server, o365, oauth_service, certs, tmp_path, message: SeedMessage):
    """A first migrate of two corpus messages, then `message` added and migrated again."""
    seed_source(source_server, first_corpus())
    config = write_world_config(tmp_path, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    first = run_cli("-c", config, "migrate", "bob")
    assert first.status == ExitStatus.OK, first.stderr
    source_server.seed("alice", "INBOX", [message])
    second = run_cli("-c", config, "migrate", "bob")
    assert second.status == ExitStatus.OK, second.stderr
    assert "verified: 3 present, 0 missing" in second.stdout
    return config


@pytest.mark.parametrize("message", [
    news(), news(date_header=None), news(internaldate=AHEAD + datetime.timedelta(hours=5)),
    news(date_header=AHEAD.astimezone(ZONE).strftime("%a, %d %b %Y %H:%M:%S %z"),
         internaldate=AHEAD.astimezone(OTHER_ZONE)),
], ids=["date-equal", "no-date", "date-differs", "other-zones"])
def test_message_dated_ahead_verifies_after_a_delta_migrate(
        source_server, o365, oauth_service, certs, tmp_path, message):
    config = delta_world(source_server, o365, oauth_service, certs, tmp_path, message)
    stored = inbox_news(o365)
    assert len(stored) == 1 and stored[0].internaldate < AHEAD  # the target kept another date
    status, report = verify(config)
    assert status == ExitStatus.OK, report
    assert (report["present"], report["missing"], report["duplicates"]) == (3, 0, 0)


def test_message_dated_ahead_gone_from_the_target_is_missing(
        source_server, o365, oauth_service, certs, tmp_path):
    config = delta_world(source_server, o365, oauth_service, certs, tmp_path, news())
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "INBOX",
                 "uid", str(inbox_news(o365)[0].uid))
    status, report = verify(config)
    assert status == ExitStatus.VERIFY
    assert (report["present"], report["missing"], report["duplicates"]) == (2, 1, 0)


@pytest.mark.parametrize("copy_date", [AHEAD, None], ids=["same-date", "now"])
def test_message_dated_ahead_twice_at_the_target_is_a_duplicate(
        source_server, o365, oauth_service, certs, tmp_path, copy_date):
    config = delta_world(source_server, o365, oauth_service, certs, tmp_path, news())
    o365.seed(MAILBOX, "INBOX", [news(internaldate=copy_date)])
    status, report = verify(config)
    assert status == ExitStatus.VERIFY
    assert (report["present"], report["missing"], report["duplicates"]) == (3, 0, 1)


def test_message_dated_ahead_verifies_after_a_delta_batch_run(
        source_server, office365_server, oauth_service, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    oauth_service.add_client("batch-app", SECRET)
    source_server.add_user("u000", PASSWORD)
    source_server.seed("u000", "INBOX", first_corpus())
    mailbox = "u000@contoso.test"
    oauth_service.grant("batch-app", mailbox)
    office365_server.add_user(mailbox)
    users = tmp_path / "users.csv"
    users.write_text(HEADER + f"u000,imap,{source_server.imap_port},u000,env:{PASSWORD_ENV},"
                              f"{mailbox}\n")
    config = base_config(tmp_path, source_server, office365_server, oauth_service)
    first = run_cli("-c", config, "batch", "run", users)
    assert first.status == ExitStatus.OK, first.stderr
    source_server.seed("u000", "INBOX", [news()])
    second = run_cli("-c", config, "batch", "run", users)
    assert second.status == ExitStatus.OK, second.stderr + second.stdout


def test_message_dated_ahead_is_already_there_for_another_archive(
        source_server, o365, oauth_service, certs, tmp_path):
    """Push finds it by identity too (as after an APPEND whose reply was lost): a second
    archive migrating into the same mailbox sends nothing again."""
    delta_world(source_server, o365, oauth_service, certs, tmp_path, news())
    other = tmp_path / "other"
    other.mkdir()
    config = write_world_config(other, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    again = run_cli("-c", config, "migrate", "bob")
    assert again.status == ExitStatus.OK, again.stderr
    assert "pushed 0, already there 3" in again.stdout
    assert len(inbox_news(o365)) == 1


def test_message_dated_ahead_still_verifies_once_its_date_has_passed(
        source_server, o365, oauth_service, certs, tmp_path, monkeypatch):
    """Then only the UID its push recorded tells: the target's date is still the other one.
    The clock (as the matching reads it) is moved past the message's date."""
    config = delta_world(source_server, o365, oauth_service, certs, tmp_path, news())
    later = AHEAD.timestamp() + 86400
    monkeypatch.setattr(identity, "_now", lambda: later)
    status, report = verify(config)
    assert status == ExitStatus.OK, report
    assert (report["present"], report["missing"], report["duplicates"]) == (3, 0, 0)
