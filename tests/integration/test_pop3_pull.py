"""`migrator pull` from a POP3 source against the real test-world Dovecot."""

from __future__ import annotations

import json
import os
import poplib

import pytest

from migrator.engine.pop3 import pull as pop3_pull
from migrator.errors import ExitStatus
from migrator.retry import RetryPolicy
from tests.cli_runner import json_lines, run_cli
from tests.integration.pop3_world import (
    PASSWORD,
    USER,
    NoUidl,
    Pop3Office365Server,
    TunedSourceServer,
    archive_rows,
    archived_bytes,
    as_pop3,
    blob_files,
    count,
    expected_archive,
    imap_state,
    manifest,
    message,
    pop3_config,
    run_process,
    seed,
    server_uidls,
)
from tests.integration.profiles import on_each_server
from tests.world.configs import Account, Config, Endpoint, OAuth
from tests.world.mailstore import SeedMessage
from tests.world.net import HOST
from tests.world.proxy import FaultProxy

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]


def pull(config, *args):
    return run_cli("-c", config, "pull", USER, *args)


@pytest.mark.parametrize("source_server, security", [
    ("dovecot", "plain"), ("dovecot", "starttls"), ("dovecot", "tls"), ("cyrus", "tls")],
    indirect=["source_server"])
def test_inbox_archived_byte_exact_and_the_server_left_as_it_was(source_server, corpus,
                                                                 tmp_path, security):
    source_server.add_user(USER, PASSWORD)
    items = [SeedMessage(item.raw, item.flags, item.internaldate) for item in corpus]
    items.append(SeedMessage(b"Subject: no final newline\r\n\r\nlast line"))
    items.append(SeedMessage(b"Subject: dots\n\n.leading dot\n..two\n.\nend\n"))
    uids = source_server.seed(USER, "INBOX", items)
    items = [item for item, uid in zip(items, uids, strict=True) if uid is not None]
    before = imap_state(source_server)
    assert any("\\Seen" not in flags for flags, _ in before.values())

    result = pull(pop3_config(tmp_path, source_server, security=security))

    assert result.status == ExitStatus.OK, result.stderr
    archive = tmp_path / "archive"
    assert archived_bytes(archive) == expected_archive(source_server)
    assert len(archive_rows(archive)) == len(items)
    assert imap_state(source_server) == before  # nothing deleted, no flag set (not even \Seen)
    assert len(server_uidls(source_server)) == len(items)
    with_bare_lf = [item for item in corpus if "bare_lf" in item.traits]
    assert with_bare_lf, "the corpus must hold bare-LF messages"
    assert f"pull {USER}: ok" in result.stdout
    with manifest(archive) as db:
        run = db.execute("SELECT * FROM runs ORDER BY id DESC").fetchone()
        assert run["command"] == "pull" and run["outcome"] == "ok"
        assert json.loads(run["counts"])["fetched"] == len(items)
        sizes = {row["uidl"]: row["size"] for row in db.execute("SELECT * FROM messages")}
    assert all(sizes[uidl] - size in (0, 2) for uidl, size in server_uidls(source_server).items())


@on_each_server
def test_second_run_fetches_nothing_and_new_mail_comes_with_the_next_run(source_server,
                                                                         tmp_path):
    source_server.add_user(USER, PASSWORD)
    seed(source_server, [message(n) for n in range(30)])
    config = pop3_config(tmp_path, source_server)
    archive = tmp_path / "archive"

    assert pull(config).status == ExitStatus.OK
    blobs = blob_files(archive)
    again = run_cli("-c", config, "--json", "pull", USER)
    assert again.status == ExitStatus.OK, again.stderr
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary.get("fetched", 0) == 0 and summary["unchanged"] == 30
    assert blob_files(archive) == blobs
    assert count(archive, "messages") == 30

    seed(source_server, [message(n) for n in range(30, 35)])
    third = run_cli("-c", config, "--json", "pull", USER)
    summary = json.loads(third.stdout.splitlines()[-1])
    assert summary["fetched"] == 5 and summary["unchanged"] == 30
    assert archived_bytes(archive) == expected_archive(source_server)
    assert count(archive, "messages") == 35


def test_dry_run_says_what_it_would_fetch_and_changes_nothing(source_server, tmp_path):
    source_server.add_user(USER, PASSWORD)
    seed(source_server, [message(n) for n in range(10)])
    config = pop3_config(tmp_path, source_server)
    archive = tmp_path / "archive"
    assert pull(config).status == ExitStatus.OK
    seed(source_server, [message(n) for n in range(10, 14)])
    rows, runs, blobs = count(archive, "messages"), count(archive, "runs"), blob_files(archive)
    before = imap_state(source_server)

    result = run_cli("-c", config, "--json", "pull", USER, "--dry-run")

    assert result.status == ExitStatus.OK, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["would_fetch"] == 4
    assert summary["would_delete"] == 0
    assert any("would fetch 4 message(s)" in n.get("text", "") for n in json_lines(result))
    assert (count(archive, "messages"), count(archive, "runs")) == (rows, runs)
    assert blob_files(archive) == blobs
    assert imap_state(source_server) == before


def test_dry_run_on_a_new_archive_creates_no_rows(source_server, tmp_path):
    source_server.add_user(USER, PASSWORD)
    seed(source_server, [message(n) for n in range(3)])
    result = pull(pop3_config(tmp_path, source_server), "--dry-run")
    assert result.status == ExitStatus.OK, result.stderr
    assert not (tmp_path / "archive").exists()  # no rows, no blobs, not even a manifest


def test_a_reused_uidl_with_other_content_keeps_both(certs, tmp_path):
    # %f: the UIDL is the Maildir file name, so a new file of the same name reuses it
    with TunedSourceServer(certs, {"pop3_uidl_format": "%f"}) as server:
        server.add_user(USER, PASSWORD)
        server.mailbox_status(USER, "INBOX", "messages")  # creates the Maildir
        name = f"{server.mailbox_path(USER, 'INBOX')}/cur/1700000000.reused.host:2,"
        first = message(1, size=500)
        write_mail_file(server, name, first)
        config = pop3_config(tmp_path, server)
        assert pull(config).status == ExitStatus.OK
        server.doveadm("expunge", "-u", USER, "mailbox", "INBOX", "all")
        second = message(2, size=900)
        write_mail_file(server, name, second)
        assert list(server_uidls(server)) == ["1700000000.reused.host"]

        result = pull(config)

        assert result.status == ExitStatus.OK, result.stderr
        assert archived_bytes(tmp_path / "archive") == {"1700000000.reused.host": [first, second]}
        assert "reused" in result.stderr
        assert pull(config).status == ExitStatus.OK  # and the next run fetches nothing again
        assert len(archive_rows(tmp_path / "archive")) == 2


def write_mail_file(server, path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
    if server.mail_owner is not None:
        os.chown(path, *server.mail_owner)
    server.mailbox_status(USER, "INBOX", "messages")  # let Dovecot pick it up


def test_a_server_without_uidl_is_pulled_by_header_fingerprint_with_a_warning(source_server,
                                                                             tmp_path):
    source_server.add_user(USER, PASSWORD)
    seed(source_server, [message(n) for n in range(8)])
    with FaultProxy(source_server.pop3_port, imap=False, rewrite=NoUidl) as proxy:
        config = pop3_config(tmp_path, source_server, port=proxy.port)
        result = pull(config)
        assert result.status == ExitStatus.OK, result.stderr
        assert ("c2s", 1) in proxy.events_of("rewrite")
        assert f"{USER}: " in result.stderr and "has no UIDL" in result.stderr
        rows = archive_rows(tmp_path / "archive")
        assert len(rows) == 8 and all(row["uidl"].startswith("top0:") for row in rows)
        bodies = sorted(data for items in archived_bytes(tmp_path / "archive").values()
                        for data in items)
        assert bodies == sorted(as_pop3(body) for _, body in imap_state(source_server).values())

        seed(source_server, [message(8)])
        again = run_cli("-c", config, "--json", "pull", USER)
        summary = json.loads(again.stdout.splitlines()[-1])
        assert summary["fetched"] == 1 and summary["unchanged"] == 8


@pytest.mark.sqlite_manifest_only
def test_maildrop_locked_by_another_client_is_a_clear_error_then_a_later_run_works(
        certs, tmp_path, monkeypatch):
    # Dovecot waits 10 s (hard-coded) for its session lock before -ERR [IN-USE]: one attempt
    # here, the retries are covered in tests/unit/test_pop3_engine.py. On one manifest kind
    # only: IN-USE is the source's; a connection error on PostgreSQL is
    # test_wrong_password_and_unverified_tls_are_one_line_errors[postgresql]
    monkeypatch.setattr(pop3_pull, "IN_USE_RETRY", RetryPolicy(attempts=1))
    with TunedSourceServer(certs, {"pop3_lock_session": "yes"}) as server:
        server.add_user(USER, PASSWORD)
        seed(server, [message(n) for n in range(5)])
        config = pop3_config(tmp_path, server)
        other = poplib.POP3(HOST, server.pop3_port, timeout=20)  # another client holds it
        other.user(USER)
        other.pass_(PASSWORD)

        result = pull(config)

        assert result.status == ExitStatus.CONNECTION
        line = [x for x in result.stderr.splitlines() if x.startswith("migrator: error:")]
        assert len(line) == 1 and USER in line[0] and "IN-USE" in line[0]
        assert "try again later" in line[0] and "Traceback" not in result.stderr
        other.quit()

        assert pull(config).status == ExitStatus.OK
        assert len(archive_rows(tmp_path / "archive")) == 5


def test_wrong_password_and_unverified_tls_are_one_line_errors(source_server, tmp_path):
    source_server.add_user(USER, PASSWORD)
    bad = pull(pop3_config(tmp_path, source_server, password="Wr0ng-Pa55"))
    assert bad.status == ExitStatus.AUTH
    assert f"{USER}: " in bad.stderr and "login refused" in bad.stderr
    assert "Wr0ng-Pa55" not in bad.stderr and "Traceback" not in bad.stderr

    untrusted = pull(pop3_config(tmp_path, source_server, security="tls", ca_file=False))
    assert untrusted.status == ExitStatus.CONNECTION
    assert "certificate verification failed" in untrusted.stderr


def test_exchange_style_pop3_with_xoauth2(certs, oauth_service, tmp_path, monkeypatch):
    mailbox = "dave@contoso.test"
    oauth_service.add_client("app", "s3cret")
    oauth_service.grant("app", mailbox)
    monkeypatch.setenv("MIGRATOR_TEST_POP3_APP_SECRET", "s3cret")
    with Pop3Office365Server(certs, oauth_service.introspection_url) as server:
        server.add_user(mailbox)
        server.seed(mailbox, "INBOX", [SeedMessage(message(n)) for n in range(6)])
        source = Endpoint("pop3", port=server.pop3s_port, security="tls", username=mailbox,
                          auth="xoauth2", ca_file=server.ca_cert, oauth=OAuth(
                              oauth_service.authority, oauth_service.ca_cert,
                              client_secret="env:MIGRATOR_TEST_POP3_APP_SECRET"))
        config = Config(tmp_path / "archive", {"dave": Account(source)}).write(
            tmp_path / "o365.toml")
        result = run_cli("-c", config, "pull", "dave")
        assert result.status == ExitStatus.OK, result.stderr
        rows = archive_rows(tmp_path / "archive", "dave")
        assert sorted(row["message_id"] for row in rows) == sorted(
            f"<{n}.pop3@example.org>" for n in range(6))

        server.add_user("erin@contoso.test")  # a mailbox the app holds no grant for
        Config(tmp_path / "archive", {"dave": Account(source.but(
            username="erin@contoso.test"))}).write(config)
        refused = run_cli("-c", config, "pull", "dave")
        assert refused.status == ExitStatus.AUTH, refused.stderr
        assert "dave: " in refused.stderr and "login refused" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_progress_events_and_no_secret_in_output(source_server, tmp_path):
    source_server.add_user(USER, PASSWORD)
    seed(source_server, [message(n) for n in range(12)])
    result = run_cli("-c", pop3_config(tmp_path, source_server), "-vv", "pull", USER)
    assert result.status == ExitStatus.OK, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert f"pull {USER}: started" in result.stderr
    assert "fetched 12" in result.stderr


def test_a_message_larger_than_the_memory_budget_after_small_ones(source_server, tmp_path):
    """More bytes than the pull holds in memory at once, in one message right after small
    ones: it is read alone and archived byte-exact (this once hung the writer)."""
    source_server.add_user(USER, PASSWORD)
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=\r\n"
    big = b"Subject: big\r\nMessage-ID: <big@test>\r\n\r\n" + line * (
        pop3_pull.UNWRITTEN_BYTES // len(line) + 1000)
    seed(source_server, [message(n) for n in range(5)] + [big, message(6)])

    # in a child with a time limit: a hang fails the test instead of stalling the suite
    result = run_process(pop3_config(tmp_path, source_server), "pull", USER, timeout=120)

    assert result.returncode == ExitStatus.OK, result.stderr
    assert archived_bytes(tmp_path / "archive") == expected_archive(source_server)
    assert len(archive_rows(tmp_path / "archive")) == 7
