"""`migrator push` and `verify ACCOUNT` against the Exchange look-alike and a plain IMAP server."""

from __future__ import annotations

import hashlib
import json

import pytest

from migrator.archive.blobs import BlobStore
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    MAILBOX,
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    assert_target_matches,
    fill_archive,
    grant_mailbox,
    message,
    placeholder_source,
    push_states,
    run_rows,
    target_block,
    target_count,
    write_world_config,
)
from tests.world import manifests
from tests.world.configs import Endpoint
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets"),
              pytest.mark.manifest_databases]




def o365_config(tmp_path, server, oauth, certs, extra=None):
    return write_world_config(tmp_path, placeholder_source(),
                              target_block(server.imaps_port, certs.ca_cert, oauth, extra=extra))


def test_corpus_arrives_in_exchange_folders_with_flags_and_dates_once(
        o365, oauth_service, certs, corpus, tmp_path):
    fill_archive(tmp_path / "archive", corpus)
    config = o365_config(tmp_path, o365, oauth_service, certs)

    first = run_cli("-c", config, "push", "bob")

    assert first.status == ExitStatus.OK, first.stderr
    assert_target_matches(o365, corpus)
    assert f"pushed {len(corpus)}, already there 0, refused 0, failed 0" in first.stdout
    assert push_states(tmp_path / "archive") == {"done": len(corpus)}
    second = run_cli("-c", config, "push", "bob")
    assert second.status == ExitStatus.OK, second.stderr
    assert "pushed 0, already there 0" in second.stdout
    assert_target_matches(o365, corpus)
    outcomes = run_rows(tmp_path / "archive", "push")
    assert [o for o, _ in outcomes] == ["ok", "ok"]
    assert json.loads(outcomes[0][1])["pushed"] == len(corpus)

    verified = run_cli("-c", config, "verify", "bob", "--json")
    report = json.loads(verified.stdout)
    assert verified.status == ExitStatus.OK, verified.stdout
    assert report["present"] == report["expected"] == len(corpus)
    assert report["missing"] == report["duplicates"] == 0
    assert {f["target"] for f in report["folders"]} == {"INBOX", "Sent Items", "Drafts",
                                                        "Archive/2019", "Reisen/Überblick"}


def test_dry_run_prints_the_plan_and_changes_nothing(o365, oauth_service, certs, corpus,
                                                     tmp_path):
    fill_archive(tmp_path / "archive", corpus)
    config = o365_config(tmp_path, o365, oauth_service, certs)
    folders_before = sorted(o365.folders(MAILBOX))

    result = run_cli("-c", config, "push", "bob", "--dry-run")

    assert result.status == ExitStatus.OK, result.stderr
    assert "Sent Items (special-use \\Sent)" in result.stdout
    assert "Reisen/Überblick" in result.stdout and "Archive/2019" in result.stdout
    assert f"total: {len(corpus)} messages to push" in result.stdout
    assert "nothing was changed" in result.stdout
    assert sorted(o365.folders(MAILBOX)) == folders_before
    assert target_count(o365) == 0
    assert push_states(tmp_path / "archive") == {}
    assert run_rows(tmp_path / "archive", "push") == []
    as_json = json.loads(run_cli("-c", config, "--json", "push", "bob", "--dry-run").stdout)
    assert as_json["to_push"] == len(corpus) and as_json["bytes"] == sum(
        len(m.raw) for m in corpus)


def test_oversize_message_is_refused_reported_and_the_rest_arrives(
        office365_factory, oauth_service, certs, tmp_path):
    server = office365_factory(max_mail_size="1M")
    grant_mailbox(oauth_service, server)
    messages = [message(n) for n in range(20)] + [message(99, size=1_500_000, mid="big")]
    fill_archive(tmp_path / "archive", messages)
    config = o365_config(tmp_path, server, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.PARTIAL
    assert "refused 1" in result.stdout and "pushed 20" in result.stdout
    assert "<big@push.example>" in result.stderr and "INBOX" in result.stderr
    assert_target_matches(server, messages[:20])
    assert push_states(tmp_path / "archive") == {"done": 20, "refused": 1}
    with manifests.connect(tmp_path / "archive") as db:
        reasons = [r for (r,) in db.execute("SELECT reason FROM failures WHERE stage='push'")]
    assert len(reasons) == 1 and "refused" in reasons[0]
    again = run_cli("-c", config, "push", "bob")  # a refusal is not retried every run
    assert "pushed 0" in again.stdout and target_count(server) == 20
    verified = run_cli("-c", config, "verify", "bob")  # one rule: a refusal is PARTIAL
    assert verified.status == ExitStatus.PARTIAL, verified.stdout
    assert "refused by the target in INBOX: <big@push.example>" in verified.stdout
    assert "verify bob: partial (refused by the target): 20 of 21 present" in verified.stdout


def test_messages_already_at_the_target_are_not_pushed_again(o365, oauth_service, certs,
                                                             tmp_path):
    messages = [message(n) for n in range(12)]
    fill_archive(tmp_path / "archive", messages)
    o365.seed(MAILBOX, "INBOX", [SeedMessage(m.raw, m.flags, m.internaldate)
                                 for m in messages[:5]])
    config = o365_config(tmp_path, o365, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert "pushed 7, already there 5" in result.stdout
    assert_target_matches(o365, messages)


def test_imap_target_with_dot_delimiter_and_byte_check(source_server, tmp_path, corpus):
    source_server.add_user("carol", SOURCE_PASSWORD)
    fill_archive(tmp_path / "archive", corpus)
    target = Endpoint("imap", port=source_server.imaps_port, security="tls", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", ca_file=source_server.ca_cert,
                      connections=3)
    config = write_world_config(tmp_path, placeholder_source(), target)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    folders = {"INBOX": "INBOX", "Sent": "Sent", "Drafts": "Drafts",
               "Archive.2019": "Archive.2019", "Reisen.Überblick": "Reisen.Überblick"}
    assert_target_matches(source_server, corpus, user="carol", folders=folders)
    verified = run_cli("-c", config, "verify", "bob", "--bytes")
    assert verified.status == ExitStatus.OK, verified.stdout + verified.stderr
    assert "changed" in verified.stdout and "DIFFERENCES" not in verified.stdout


def test_verify_finds_missing_and_duplicated_messages(o365, oauth_service, certs, tmp_path):
    messages = [message(n) for n in range(6)]
    fill_archive(tmp_path / "archive", messages)
    config = o365_config(tmp_path, o365, oauth_service, certs)
    assert run_cli("-c", config, "push", "bob").status == ExitStatus.OK
    stored = o365.list_messages(MAILBOX, "INBOX")
    o365.doveadm("expunge", "-u", MAILBOX, "mailbox", "INBOX", "uid", str(stored[0].uid))
    o365.seed(MAILBOX, "INBOX", [SeedMessage(messages[3].raw, (), messages[3].internaldate),
                                 SeedMessage(message(50, mid="stranger").raw)])

    result = run_cli("-c", config, "verify", "bob", "--json")

    report = json.loads(result.stdout)
    assert result.status == ExitStatus.VERIFY
    assert report["missing"] == 1 and report["duplicates"] == 1 and report["extras"] == 1
    assert report["folders"][0]["missing"] == ["<0@push.example> from INBOX"]


def test_byte_check_is_refused_against_office365(o365, oauth_service, certs, tmp_path):
    fill_archive(tmp_path / "archive", [message(1)])
    config = o365_config(tmp_path, o365, oauth_service, certs)
    result = run_cli("-c", config, "verify", "bob", "--bytes")
    assert result.status == ExitStatus.USAGE
    assert "re-renders" in result.stderr and result.stderr.count("\n") == 1


def test_account_without_target_is_a_clear_error(tmp_path):
    config = write_world_config(tmp_path, placeholder_source(), None)
    result = run_cli("-c", config, "push", "bob")
    assert result.status == ExitStatus.CONFIG
    assert "no [accounts.bob.target]" in result.stderr


def overwrite_blob(archive, stored: SeedMessage, data: bytes) -> None:
    """Damage an archived message's blob in place (what a failing disk would do)."""
    BlobStore(archive).path(hashlib.sha256(stored.raw).hexdigest()).write_bytes(data)


def test_big_messages_stream_and_a_damaged_blob_is_never_sent(o365, oauth_service, certs,
                                                              tmp_path):
    good = [message(n) for n in range(8)] + [message(40, size=3_500_000, mid="big")]
    damaged = message(41, mid="damaged")
    fill_archive(tmp_path / "archive", [*good, damaged])
    overwrite_blob(tmp_path / "archive", damaged, damaged.raw.replace(b"line", b"LINE", 1))
    config = o365_config(tmp_path, o365, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.PARTIAL
    assert "<damaged@push.example>" in result.stderr and "verify --archive" in result.stderr
    assert "pushed 9" in result.stdout and "failed 1" in result.stdout
    assert_target_matches(o365, good)


def test_a_damaged_big_blob_is_cut_short_and_the_rest_arrives_once(o365, oauth_service, certs,
                                                                  tmp_path):
    """A big message is hashed as it is sent: a damaged one is found at its end, its APPEND
    is cut before the last byte (never stored), and the connection's other unanswered
    APPENDs are settled by looking at the target."""
    good = [message(n) for n in range(20)] + [message(40, size=1_500_000, mid="big")]
    damaged = message(41, size=2_500_000, mid="damaged")
    fill_archive(tmp_path / "archive", [*good[:10], damaged, *good[10:]])
    overwrite_blob(tmp_path / "archive", damaged, damaged.raw[:-3] + b"XX\n")
    config = o365_config(tmp_path, o365, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.PARTIAL
    assert "<damaged@push.example>" in result.stderr and "verify --archive" in result.stderr
    assert "pushed 21" in result.stdout and "failed 1" in result.stdout
    assert_target_matches(o365, good)
