"""`migrator repair ACCOUNT`: missing and corrupted blobs fetched again from the source (IMAP by
UID or Message-ID, POP3 by UIDL); what the source no longer has is named; rows never change."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration import pop3_world
from tests.integration.imap_pull_world import PASSWORD_ENV, source_config
from tests.world import manifests
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]
WHEN = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def raw(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: repair {n}\r\nMessage-ID: <{n}@repair.example>"
            "\r\n\r\n").encode() + b"line %d\r\n" % n * 200


def rows(archive) -> list[tuple]:
    with manifests.connect(archive) as db:
        return list(db.execute("SELECT * FROM messages ORDER BY id"))


def blob(archive, data: bytes):
    sha = hashlib.sha256(data).hexdigest()
    return archive / "objects" / sha[:2] / f"{sha[2:]}.eml"


def damage(archive, deleted: bytes, corrupted: bytes) -> None:
    blob(archive, deleted).unlink()
    path = blob(archive, corrupted)
    path.write_bytes(path.read_bytes().replace(b"line", b"LINE", 1))


def test_deleted_and_corrupted_blobs_are_fetched_again_by_uid(source_server, tmp_path):
    source_server.add_user("alice")
    source_server.seed("alice", "INBOX", [SeedMessage(raw(n), (), WHEN) for n in range(6)])
    source_server.seed("alice", "Work", [SeedMessage(raw(n), (), WHEN) for n in range(10, 14)])
    config = source_config(tmp_path, source_server)
    archive = tmp_path / "archive"
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    before = rows(archive)
    damage(archive, raw(2), raw(12))
    damaged = run_cli("-c", config, "verify", "--archive")
    assert damaged.status == ExitStatus.VERIFY and "migrator repair ACCOUNT" in damaged.stdout

    result = run_cli("-c", config, "repair", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert "2 damaged blob(s), 2 repaired, 0 not repairable" in result.stdout
    assert blob(archive, raw(2)).read_bytes() == raw(2)
    assert blob(archive, raw(12)).read_bytes() == raw(12)
    assert run_cli("-c", config, "verify", "--archive").status == ExitStatus.OK
    assert rows(archive) == before
    again = run_cli("-c", config, "repair", "alice")
    assert again.status == ExitStatus.OK and "0 damaged blob(s)" in again.stdout


def test_changed_uidvalidity_is_found_by_message_id_and_lost_mail_is_named(source_server,
                                                                          tmp_path):
    source_server.add_user("alice")
    source_server.seed("alice", "INBOX", [SeedMessage(raw(n), (), WHEN) for n in range(5)])
    config = source_config(tmp_path, source_server)
    archive = tmp_path / "archive"
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    before = rows(archive)
    damage(archive, raw(1), raw(3))
    blob(archive, raw(4)).unlink()
    uids = [m.uid for m in source_server.list_messages("alice", "INBOX")]
    source_server.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid", str(uids[4]))
    validity = source_server.mailbox_status("alice", "INBOX", "uidvalidity")
    source_server.doveadm("mailbox", "update", "-u", "alice", "--uid-validity",
                          str(validity + 7), "INBOX")

    result = run_cli("-c", config, "repair", "alice")

    assert result.status == ExitStatus.PARTIAL, result.stderr
    assert "3 damaged blob(s), 2 repaired, 1 not repairable" in result.stdout
    assert "<4@repair.example>" in result.stderr and "no longer has" in result.stderr
    assert "Traceback" not in result.stderr
    assert blob(archive, raw(1)).read_bytes() == raw(1)
    assert blob(archive, raw(3)).read_bytes() == raw(3)
    assert rows(archive) == before
    verified = run_cli("-c", config, "verify", "--archive")
    assert verified.status == ExitStatus.VERIFY and "1 missing, 0 corrupted" in verified.stdout


def test_pop3_blobs_are_fetched_again_by_uidl(source_server, tmp_path):
    source_server.add_user(pop3_world.USER, pop3_world.PASSWORD)
    messages = [pop3_world.message(n) for n in range(8)]
    pop3_world.seed(source_server, messages)
    config = pop3_world.pop3_config(tmp_path, source_server)
    archive = tmp_path / "archive"
    assert run_cli("-c", config, "pull", pop3_world.USER).status == ExitStatus.OK
    before = rows(archive)
    archived = sorted(archive.glob("objects/*/*.eml"))
    archived[0].unlink()
    archived[1].write_bytes(b"not what was archived")

    result = run_cli("-c", config, "repair", pop3_world.USER)

    assert result.status == ExitStatus.OK, result.stderr
    assert "2 damaged blob(s), 2 repaired" in result.stdout
    assert run_cli("-c", config, "verify", "--archive").status == ExitStatus.OK
    assert rows(archive) == before
    assert len(source_server.list_messages(pop3_world.USER, "INBOX")) == 8  # nothing deleted


def test_a_lost_source_connection_is_one_line_and_a_rerun_completes(source_server, tmp_path,
                                                                    fault_proxy):
    source_server.add_user("alice")
    source_server.seed("alice", "INBOX", [SeedMessage(raw(n), (), WHEN) for n in range(6)])
    config = source_config(tmp_path, source_server)
    archive = tmp_path / "archive"
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    damage(archive, raw(2), raw(4))
    proxy = fault_proxy(source_server.imap_port)
    proxy.drop_after_bytes(3000, "s2c", connections=(1,))  # in the middle of the FETCH
    cut = source_config(tmp_path, source_server, port=proxy.port)

    result = run_cli("-c", cut, "repair", "alice")

    assert result.status == ExitStatus.CONNECTION, result.stdout + result.stderr
    assert "source connection lost during repair" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("migrator: error") == 1
    direct = source_config(tmp_path, source_server)
    again = run_cli("-c", direct, "repair", "alice")
    assert again.status == ExitStatus.OK, again.stderr
    assert run_cli("-c", direct, "verify", "--archive").status == ExitStatus.OK
