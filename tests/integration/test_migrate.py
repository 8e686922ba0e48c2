"""`migrator migrate`: real sources (IMAP, POP3) -> archive -> Exchange look-alike, end to end."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import json_result, run_cli
from tests.integration.imap_pull_world import assert_archive_matches, imap_client
from tests.integration.push_world import (
    SECRET,
    SOURCE_PASSWORD,
    assert_target_matches,
    issued_tokens,
    leaked,
    push_states,
    run_rows,
    source_block,
    target_block,
    write_world_config,
)
from tests.world import manifests
from tests.world.configs import Account, Config
from tests.world.corpus import generate
from tests.world.mailstore import SeedMessage
from tests.world.proxy import FaultProxy

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets"),
              pytest.mark.manifest_databases]




def seed_source(server, messages, user: str = "alice") -> None:
    server.add_user(user, SOURCE_PASSWORD)
    by_folder: dict[str, list] = {}
    for item in messages:
        by_folder.setdefault(item.folder, []).append(item)
    for folder, items in by_folder.items():
        server.seed(user, folder, items)


def test_imap_source_to_office365_exactly_once_and_secrets_never_shown(
        source_server, o365, oauth_service, certs, corpus, tmp_path, caplog):
    seed_source(source_server, corpus)
    config = write_world_config(tmp_path, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    caplog.set_level(logging.DEBUG)

    first = run_cli("-c", config, "-vv", "--log-file", tmp_path / "run.log", "migrate", "bob")

    assert first.status == ExitStatus.OK, first.stderr
    archive = tmp_path / "archive"
    assert_archive_matches(imap_client(source_server, "alice", SOURCE_PASSWORD), archive,
                           account="bob")
    assert_target_matches(o365, corpus)
    assert f"pulled {len(corpus)}, pushed {len(corpus)}" in first.stdout
    assert f"verified: {len(corpus)} present, 0 missing" in first.stdout
    second = run_cli("-c", config, "migrate", "bob")
    assert second.status == ExitStatus.OK, second.stderr
    assert "pulled 0, pushed 0, already there 0" in second.stdout
    assert_target_matches(o365, corpus)
    assert [outcome for outcome, _ in run_rows(archive, "migrate")] == ["ok", "ok"]

    secrets = [SECRET, SOURCE_PASSWORD, *issued_tokens(oauth_service)]
    assert len(secrets) > 2
    manifest_bytes = manifests.contents(archive)
    texts = [first.stdout, first.stderr, second.stdout, second.stderr, caplog.text,
             (tmp_path / "run.log").read_text(), manifest_bytes]
    assert "AUTHENTICATE" in first.stderr or "AUTHENTICATE" in caplog.text  # protocol shown
    assert leaked(secrets, *texts) == []


def test_pop3_source_to_office365(source_server, o365, oauth_service, certs, tmp_path):
    messages = [replace(m, folder="INBOX")
                for m in generate(seed=77, count=40, max_size=120_000, stdlib=False)]
    seed_source(source_server, messages)
    config = write_world_config(
        tmp_path, source_block(source_server, kind="pop3", port=source_server.pop3s_port,
                               security="tls"),
        target_block(o365.imaps_port, certs.ca_cert, oauth_service))

    first = run_cli("-c", config, "migrate", "bob")

    assert first.status == ExitStatus.OK, first.stderr
    served = sorted(hashlib.sha256(m.raw).hexdigest()
                    for m in source_server.list_messages("alice", "INBOX"))
    archived = sorted(hashlib.sha256(path.read_bytes()).hexdigest()
                      for path in (tmp_path / "archive" / "objects").rglob("*.eml"))
    assert archived == served  # the archive is byte-exact
    # POP3 has no flags or INTERNALDATE: no flags, and the delivery (Received) date
    unflagged = [replace(m, flags=()) for m in messages]
    assert_target_matches(o365, unflagged)
    second = run_cli("-c", config, "migrate", "bob")
    assert second.status == ExitStatus.OK and "pushed 0" in second.stdout
    assert push_states(tmp_path / "archive") == {"done": len(messages)}


def test_migrate_through_faults_completes_exactly_once(source_server, o365, oauth_service,
                                                       certs, corpus, tmp_path):
    seed_source(source_server, corpus)
    with FaultProxy(source_server.imap_port) as source_proxy, \
            FaultProxy(o365.imaps_port, tls_terminate=True, certs=certs,
                       delay=0.002, bandwidth=500_000) as target_proxy:
        source_proxy.throttle("FETCH", nth=(2,), backoff_ms=50)
        target_proxy.drop_in_literal("APPEND", nth=(4, 40))
        target_proxy.throttle("APPEND", nth=(2, 9, 10, 30), backoff_ms=50)
        target_proxy.throttle("FETCH", nth=(1,), backoff_ms=50)
        target_proxy.bye(after_seconds=1.0)
        config = write_world_config(
            tmp_path, source_block(source_server, port=source_proxy.port),
            target_block(target_proxy.port, certs.ca_cert, oauth_service))

        result = run_cli("-c", config, "migrate", "bob")

        assert result.status == ExitStatus.OK, result.stderr
        assert target_proxy.events_of("literal_drop") and target_proxy.events_of("throttle")
        assert target_proxy.events_of("bye")
        assert source_proxy.events_of("throttle")
    assert_target_matches(o365, corpus)


def test_push_starts_while_the_pull_is_still_running(source_server, o365, oauth_service,
                                                     certs, tmp_path):
    messages = generate(seed=5, count=150, max_size=40_000, stdlib=False)
    seed_source(source_server, messages)
    with FaultProxy(source_server.imap_port, delay=0.03, bandwidth=400_000) as slow_source:
        config = write_world_config(
            tmp_path, source_block(source_server, port=slow_source.port),
            target_block(o365.imaps_port, certs.ca_cert, oauth_service))
        result = run_cli("-c", config, "--json", "migrate", "bob")
    assert result.status == ExitStatus.OK, result.stderr
    summary = json_result(result)  # after the notices about renamed folders
    assert summary["push_sent_while_pulling"] > 0
    assert_target_matches(o365, messages)


def test_push_connections_sign_in_beside_the_control_connection(
        source_server, o365, oauth_service, certs, tmp_path, monkeypatch):
    """In migrate the workers' logins start with the push, beside the control connection's
    sign-in and LIST (the pull is fetching by the time they are done); a push of an archive
    starts them once it has planned and found something to send. Both move every message."""
    from migrator.engine.push import job
    from migrator.targets.control import TargetControl

    order: list[str] = []
    ready, layout = job.ReadyConnections, TargetControl.layout

    def logging_in(*args, **kwargs):
        order.append("logins")
        return ready(*args, **kwargs)

    def listing(self):
        order.append("layout")
        return layout(self)

    monkeypatch.setattr(job, "ReadyConnections", logging_in)
    monkeypatch.setattr(TargetControl, "layout", listing)
    messages = generate(seed=9, count=20, max_size=20_000, stdlib=False)
    seed_source(source_server, messages)
    config = write_world_config(tmp_path, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))

    migrated = run_cli("-c", config, "migrate", "bob")

    assert migrated.status == ExitStatus.OK, migrated.stderr
    assert order[:2] == ["logins", "layout"]
    assert_target_matches(o365, messages)
    later = generate(seed=10, count=5, max_size=20_000, stdlib=False)
    seed_source(source_server, later)
    assert run_cli("-c", config, "pull", "bob").status == ExitStatus.OK
    order.clear()

    pushed = run_cli("-c", config, "push", "bob")

    assert pushed.status == ExitStatus.OK, pushed.stderr
    assert order[:2] == ["layout", "logins"]
    assert_target_matches(o365, messages + later)


def test_migrate_dry_run_changes_nothing(source_server, o365, oauth_service, certs, corpus,
                                         tmp_path):
    seed_source(source_server, corpus)
    config = write_world_config(tmp_path, source_block(source_server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))
    result = run_cli("-c", config, "migrate", "bob", "--dry-run")
    assert result.status == ExitStatus.OK, result.stderr
    assert "migrate bob (dry run)" in result.stdout
    assert not (tmp_path / "archive").exists()


@pytest.mark.parametrize("during", [False, True], ids=["default", "index_during_migrate"])
def test_migrate_leaves_the_search_index_to_the_first_search_unless_told(
        during, source_server, o365, oauth_service, certs, tmp_path):
    source_server.add_user("alice", SOURCE_PASSWORD)
    source_server.seed("alice", "INBOX", [SeedMessage(
        b"From: a@example.org\r\nSubject: quarterly zebra %d\r\nMessage-ID: <%d@z.example>"
        b"\r\n\r\nbody %d\r\n" % (n, n, n)) for n in range(12)])
    config = Config(tmp_path / "archive", {"bob": Account(
        source_block(source_server), target_block(o365.imaps_port, certs.ca_cert, oauth_service))},
        index_during_migrate=during or None).write(tmp_path / "migrator.toml")
    archive = tmp_path / "archive"

    assert run_cli("-c", config, "migrate", "bob").status == ExitStatus.OK

    assert indexed(archive) == (12 if during else 0)
    found = run_cli("-c", config, "search", "bob", "zebra")
    assert found.status == ExitStatus.OK, found.stderr
    assert found.stdout.count("quarterly zebra") == 12  # the first search indexes the rest
    assert indexed(archive) == 12


def indexed(archive) -> int:
    with manifests.connect(archive) as db:
        return int(db.execute("SELECT COUNT(*) FROM search_docs").fetchone()[0])
