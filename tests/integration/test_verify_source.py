"""`migrator verify ACCOUNT --source`: the archive against every message the source holds.

A pull that lost a message and still recorded its folder as synced leaves an archive that
`verify ACCOUNT` (target against archive) and later pulls (STATUS unchanged: folder skipped)
both call complete. These tests make that archive by taking rows out of the manifest, and
check that `--source` names the message, exits 7, and that the next pull brings it back.
"""

from __future__ import annotations

import datetime
import json
import re

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration import pop3_world
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    archive_view,
    assert_archive_matches,
    imap_client,
    office365_config,
    round_trips,
    server_flags,
    source_config,
)
from tests.integration.profiles import on_each_server
from tests.world import manifests
from tests.world.mailstore import SeedMessage
from tests.world.proxy import Rewrite

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]
WHEN = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def raw(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: source {n}\r\nMessage-ID: <{n}@source.example>"
            "\r\n\r\n").encode() + b"line %d\r\n" % n * 40


def pulled(server, tmp_path):
    """alice with INBOX (6 messages) and Work (4), pulled; (config, archive)."""
    server.add_user("alice")
    server.seed("alice", "INBOX", [SeedMessage(raw(n), (), WHEN) for n in range(6)])
    server.seed("alice", server.folder_name("Work"),
                [SeedMessage(raw(n), (), WHEN) for n in range(10, 14)])
    config = source_config(tmp_path, server)
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    return config, tmp_path / "archive"


def lose_row(archive, folder: str, uid: int) -> None:
    """What a pull that lost the message leaves: no row, the folder's sync state kept."""
    with manifests.connect(archive) as db:
        db.execute("DELETE FROM messages WHERE uid = ? AND folder_id = "
                   "(SELECT id FROM folders WHERE name = ?)", (uid, folder))


def verify_source(config, *more):
    return run_cli("-c", config, "verify", "alice", "--source", *more)


@on_each_server
def test_a_complete_archive_verifies_and_mail_that_came_since_is_new(source_server, tmp_path):
    config, _archive = pulled(source_server, tmp_path)
    client = imap_client(source_server, "alice")
    flags_before = server_flags(client, "INBOX")

    result = verify_source(config)

    assert result.status == ExitStatus.OK, result.stdout + result.stderr
    assert "ok: 10 of 10 at the source archived, 0 missing" in result.stdout
    assert server_flags(client, "INBOX") == flags_before  # read-only: no \Seen set
    source_server.seed("alice", "INBOX", [SeedMessage(raw(6), (), WHEN)])
    later_folder = source_server.folder_name("Later")
    source_server.seed("alice", later_folder, [SeedMessage(raw(n), (), WHEN) for n in (20, 21)])

    later = verify_source(config, "--json")

    assert later.status == ExitStatus.OK, later.stdout + later.stderr
    report = json.loads(later.stdout)
    assert report["totals"]["new"] == 3 and report["totals"]["missing"] == 0
    by_name = {folder["folder"]: folder for folder in report["folders"]}
    assert by_name["INBOX"]["new"] == 1 and by_name["INBOX"]["archived"] == 6
    assert by_name[later_folder]["note"] == "no pull has finished this folder yet"
    client.logout()


@on_each_server
def test_a_message_a_pull_lost_is_missing_and_the_next_pull_fetches_it(source_server,
                                                                       tmp_path):
    config, archive = pulled(source_server, tmp_path)
    work = source_server.folder_name("Work")
    lose_row(archive, work, 2)
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    assert 2 not in archive_view(archive)[work]  # the folder's STATUS is unchanged
    assert run_cli("-c", config, "verify", "--archive").status == ExitStatus.OK

    result = verify_source(config)

    assert result.status == ExitStatus.VERIFY, result.stdout + result.stderr
    assert f"missing in {work}: UID 2" in result.stdout
    assert "DIFFERENCES: 9 of 10 at the source archived, 1 missing" in result.stdout
    backup = run_cli("-c", config, "backup", "alice")  # its no-op probe must step aside
    assert backup.status == ExitStatus.OK, backup.stdout + backup.stderr
    client = imap_client(source_server, "alice")
    assert_archive_matches(client, archive)
    client.logout()
    assert verify_source(config).status == ExitStatus.OK


@on_each_server
def test_a_message_marked_gone_while_the_source_lists_it_is_missing_then_live_again(
        source_server, tmp_path):
    config, archive = pulled(source_server, tmp_path)
    with manifests.connect(archive) as db:
        db.execute("UPDATE messages SET gone_at = ? WHERE uid = 3 AND folder_id = "
                   "(SELECT id FROM folders WHERE name = 'INBOX')",
                   (datetime.datetime(2021, 1, 1),))
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    assert 3 not in archive_view(archive)["INBOX"]  # a pull alone never looks again

    result = verify_source(config)

    assert result.status == ExitStatus.VERIFY, result.stdout + result.stderr
    assert "missing in INBOX: UID 3 (marked gone from the source in the archive)" \
        in result.stdout
    pull = run_cli("-c", config, "pull", "alice", "--json")
    assert pull.status == ExitStatus.OK, pull.stdout + pull.stderr
    assert '"back": 1' in pull.stdout
    client = imap_client(source_server, "alice")
    assert_archive_matches(client, archive)
    client.logout()
    assert verify_source(config).status == ExitStatus.OK


def test_a_message_the_pull_recorded_as_failed_is_partial_not_missing(source_server, tmp_path):
    config, archive = pulled(source_server, tmp_path)
    lose_row(archive, "INBOX", 5)
    with manifests.connect(archive) as db:
        account = db.execute("SELECT id FROM accounts WHERE name = 'alice'").fetchone()[0]
        db.execute("INSERT INTO failures (account_id, stage, folder, ref, reason, at) "
                   "VALUES (?, 'pull', 'INBOX', 'UID 5', 'FETCH refused', ?)",
                   (account, datetime.datetime(2021, 1, 1)))

    result = verify_source(config)

    assert result.status == ExitStatus.PARTIAL, result.stdout + result.stderr
    assert "failed in an earlier pull in INBOX: UID 5" in result.stdout
    assert "0 missing" in result.stdout


def test_pop3_a_message_listed_before_an_archived_one_is_missing(source_server, tmp_path):
    source_server.add_user(pop3_world.USER, pop3_world.PASSWORD)
    pop3_world.seed(source_server, [pop3_world.message(n) for n in range(5)])
    config = pop3_world.pop3_config(tmp_path, source_server)
    archive = tmp_path / "archive"
    assert run_cli("-c", config, "pull", pop3_world.USER).status == ExitStatus.OK
    second = list(pop3_world.server_uidls(source_server))[1]
    with manifests.connect(archive) as db:
        db.execute("DELETE FROM messages WHERE uidl = ?", (second,))
    pop3_world.seed(source_server, [pop3_world.message(9)])

    result = run_cli("-c", config, "verify", pop3_world.USER, "--source")

    assert result.status == ExitStatus.VERIFY, result.stdout + result.stderr
    assert f"missing in INBOX: UIDL {second} (message 2)" in result.stdout
    assert "4 of 6 at the source archived, 1 missing, 0 failed, 1 new" in result.stdout
    assert run_cli("-c", config, "pull", pop3_world.USER).status == ExitStatus.OK
    assert run_cli("-c", config, "verify", pop3_world.USER, "--source").status == ExitStatus.OK
    assert len(source_server.list_messages(pop3_world.USER, "INBOX")) == 6  # none deleted


def test_nothing_archived_yet_is_all_new_and_creates_no_manifest(source_server, tmp_path):
    source_server.add_user("alice")
    source_server.seed("alice", "INBOX", [SeedMessage(raw(n), (), WHEN) for n in range(3)])
    config = source_config(tmp_path, source_server)

    result = verify_source(config)

    assert result.status == ExitStatus.OK, result.stdout + result.stderr
    assert "0 of 3 at the source archived, 0 missing, 0 failed, 3 new" in result.stdout
    assert not (tmp_path / "archive" / "manifest.sqlite").exists()


def test_source_with_target_only_options_is_a_usage_error(tmp_path):
    config = source_config(tmp_path, type("Nowhere", (), {"imap_port": 1, "ca_cert": None})())
    for option in ("--full", "--bytes"):
        result = verify_source(config, option)
        assert result.status == ExitStatus.USAGE
        assert "--source always lists every message" in result.stderr


def test_office365_source_over_xoauth2_with_exchange_folder_names(office365_server,
                                                                  oauth_service, tmp_path):
    mailbox = "bob@contoso.test"
    oauth_service.add_client("app", "secret")
    oauth_service.grant("app", mailbox)
    office365_server.add_user(mailbox)
    office365_server.seed(mailbox, "INBOX", [SeedMessage(raw(n), (), WHEN) for n in range(5)])
    office365_server.seed(mailbox, "Projekte/Übersicht",
                          [SeedMessage(raw(n), (), WHEN) for n in (7, 8)])
    config = office365_config(tmp_path, office365_server, oauth_service, mailbox)
    assert run_cli("-c", config, "pull", "o365").status == ExitStatus.OK
    with manifests.connect(tmp_path / "archive") as db:
        db.execute("DELETE FROM messages WHERE uid = 2 AND folder_id = "
                   "(SELECT id FROM folders WHERE name = 'Projekte/Übersicht')")

    result = run_cli("-c", config, "verify", "o365", "--source", "--json")

    assert result.status == ExitStatus.VERIFY, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["sizes_compared"] is False  # Exchange's RFC822.SIZE is not its bytes
    assert report["totals"]["archived"] == 6 and report["totals"]["missing"] == 1
    lost = {f["folder"]: f for f in report["folders"]}["Projekte/Übersicht"]
    assert lost["missing"] == ["UID 2"]
    assert "secret" not in result.stdout + result.stderr
    assert run_cli("-c", config, "pull", "o365").status == ExitStatus.OK
    assert run_cli("-c", config, "verify", "o365", "--source").status == ExitStatus.OK


def count_listing_waits(monkeypatch) -> list[int]:
    """Per `verify --source` of an IMAP source: how often its connection waited for an
    answer after sending while it listed the folders (its round trips)."""
    from migrator.engine.verify import source as module

    waits: list[int] = []
    listings = module._listings

    def counted(source, folders):
        with round_trips(source.wire) as counted_here:
            yield from listings(source, folders)
        waits.extend(counted_here)

    monkeypatch.setattr(module, "_listings", counted)
    return waits


@on_each_server
def test_the_folders_are_listed_in_one_round_trip(source_server, tmp_path, monkeypatch):
    config, _archive = pulled(source_server, tmp_path)
    for name in ("Later", "Zeta"):
        source_server.seed("alice", source_server.folder_name(name),
                           [SeedMessage(raw(30), (), WHEN)])
    waits = count_listing_waits(monkeypatch)

    result = verify_source(config, "--json")

    assert result.status == ExitStatus.OK, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert len(report["folders"]) == 4 and report["totals"]["new"] == 2
    assert waits == [1]  # EXAMINE + listing of every folder sent before the first answer


class ExamineElsewhere(Rewrite):
    """Sends the EXAMINE of Work to a folder that does not exist: the server refuses it."""

    def client(self, unit: bytes) -> bytes:
        return re.sub(rb'EXAMINE ("?)Work\1', b'EXAMINE "NoSuchFolder"', unit)


def test_a_folder_the_source_refuses_is_named_and_the_others_compared(
        source_server, tmp_path, fault_proxy):
    config, _archive = pulled(source_server, tmp_path)
    proxy = fault_proxy(source_server.imap_port, rewrite=ExamineElsewhere)
    config = source_config(tmp_path, source_server, port=proxy.port)

    result = verify_source(config)

    assert result.status == ExitStatus.PARTIAL, result.stdout + result.stderr
    assert re.search(r"Work: cannot read the folder: NO .*", result.stdout)
    assert "partial (failed or unreadable at the source): 6 of 6 at the source archived" \
        in result.stdout


def test_an_archived_size_that_is_not_the_sources_is_a_difference(source_server, tmp_path):
    config, archive = pulled(source_server, tmp_path)
    with manifests.connect(archive) as db:
        db.execute("UPDATE messages SET size = size + 1 WHERE uid = 4 AND folder_id = "
                   "(SELECT id FROM folders WHERE name = 'INBOX')")

    result = verify_source(config)

    assert result.status == ExitStatus.VERIFY, result.stdout + result.stderr
    assert re.search(r"size differs in INBOX: UID 4 \((\d+) bytes at the source, (\d+) "
                     r"archived\)", result.stdout)
    assert "0 missing, 1 with another size" in result.stdout
