"""Folder hierarchy from each server's NAMESPACE (RFC 2342), source and target, end to end.

Dovecot's default personal prefix is empty, so its `INBOX.Sub` is a child of the Inbox; Cyrus
keeps every personal folder under the prefix `INBOX.`, so its `INBOX.Work` is the folder
`Work`, and a folder pushed to Cyrus goes under that prefix.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from migrator.config import load
from migrator.errors import ExitStatus
from migrator.targets.control import TargetControl
from tests.cli_runner import run_cli
from tests.integration.profiles import on_each_server
from tests.integration.push_world import (
    MAILBOX,
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    assert_target_matches,
    fill_archive,
    message,
    placeholder_source,
    push_states,
    source_block,
    target_block,
    write_world_config,
)
from tests.world.configs import Endpoint

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]


def seed(server, folders: dict[str, int]) -> None:
    """`alice` with `count` messages in each of `folders` (server names)."""
    server.add_user("alice", SOURCE_PASSWORD)
    number = 0
    for folder, count in folders.items():
        server.seed("alice", folder, [message(number + i, folder=folder) for i in range(count)])
        number += count


def migrate_to_exchange(server, o365, oauth, certs, tmp_path) -> Counter[str]:
    """Run `migrate`; {Exchange folder: messages} afterwards."""
    config = write_world_config(tmp_path, source_block(server),
                                target_block(o365.imaps_port, certs.ca_cert, oauth))
    result = run_cli("-c", config, "migrate", "bob")
    assert result.status == ExitStatus.OK, result.stderr
    return Counter({folder: len(o365.list_messages(MAILBOX, folder))
                    for folder in o365.folders(MAILBOX)})


def test_dovecot_inbox_dot_sub_stays_a_child_of_the_inbox(source_server, o365, oauth_service,
                                                          certs, tmp_path):
    seed(source_server, {"INBOX": 2, "INBOX.Sub": 3, "Work": 1})

    at_target = migrate_to_exchange(source_server, o365, oauth_service, certs, tmp_path)

    assert at_target["INBOX/Sub"] == 3 and at_target["Work"] == 1 and at_target["INBOX"] == 2
    assert "Sub" not in at_target  # not lifted to the top level
    recorded = tmp_path / "archive" / "namespaces" / "account-bob.json"
    assert json.loads(recorded.read_text()) == {"prefix": "", "delimiter": ".",
                                                "server": f"127.0.0.1:{source_server.imap_port}"}


def test_cyrus_inbox_prefix_is_not_a_folder_level(cyrus_server, o365, oauth_service, certs,
                                                  tmp_path):
    seed(cyrus_server, {"INBOX": 2, "INBOX.Work": 3, "INBOX.Work.Deep": 1})

    at_target = migrate_to_exchange(cyrus_server, o365, oauth_service, certs, tmp_path)

    assert at_target["Work"] == 3 and at_target["Work/Deep"] == 1 and at_target["INBOX"] == 2
    assert not [folder for folder in at_target if folder.startswith("INBOX/")]
    recorded = tmp_path / "archive" / "namespaces" / "account-bob.json"
    assert json.loads(recorded.read_text()) == {"prefix": "INBOX.", "delimiter": ".",
                                                "server": f"127.0.0.1:{cyrus_server.imap_port}"}


@on_each_server
def test_migrate_to_cyrus_puts_work_at_inbox_work(source_server, cyrus_server, tmp_path):
    """From Dovecot (empty prefix) and from Cyrus itself (another user on the same server):
    `Work` lands at `INBOX.Work`, never at `INBOX.INBOX.Work`."""
    seed(source_server, {"INBOX": 1, source_server.folder_name("Work"): 2, "INBOX.Sub": 3})
    cyrus_server.add_user("carol", SOURCE_PASSWORD)
    target = Endpoint("imap", port=cyrus_server.imap_port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    config = write_world_config(tmp_path, source_block(source_server), target)

    result = run_cli("-c", config, "migrate", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    at_target = {folder: len(cyrus_server.list_messages("carol", folder))
                 for folder in cyrus_server.folders("carol")}
    assert at_target == {"INBOX": 1, "INBOX.Work": 2, "INBOX.Sub": 3}


def test_cyrus_lists_several_folders_uids_in_one_round_trip(source_server, cyrus_server,
                                                             tmp_path):
    """The pipelined SELECT and UID SEARCH (verify and the push's re-check) against Cyrus: a
    folder it cannot select gives nothing, never another folder's UIDs, and the connection
    answers the next commands with their own answers."""
    seed(source_server, {"INBOX": 1, source_server.folder_name("Work"): 2, "INBOX.Sub": 3})
    cyrus_server.add_user("carol", SOURCE_PASSWORD)
    target = Endpoint("imap", port=cyrus_server.imap_port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20)
    config = write_world_config(tmp_path, source_block(source_server), target)
    assert run_cli("-c", config, "migrate", "bob").status == ExitStatus.OK
    uids = {folder: {m.uid for m in cyrus_server.list_messages("carol", folder)}
            for folder in ("INBOX", "INBOX.Work", "INBOX.Sub")}
    account = load(config).account("bob")
    control = TargetControl(account.target, account.name)
    try:
        found = control.uids_of(["INBOX.Work", "INBOX.Nosuch", "INBOX.Sub", "INBOX"])
        assert found["INBOX.Nosuch"] is None
        assert {name: listed[1] for name, listed in found.items() if listed} == uids
        assert found["INBOX.Sub"][0].exists == 3
        assert control.uids_of(["INBOX.Nosuch"]) == {"INBOX.Nosuch": None}
        assert control.uids("INBOX.Work")[1] == uids["INBOX.Work"]
    finally:
        control.close()


# where the corpus folders land on Cyrus: under its personal prefix INBOX.
CYRUS_FOLDERS = {"INBOX": "INBOX", "Sent": "INBOX.Sent", "Drafts": "INBOX.Drafts",
                 "Archive.2019": "INBOX.Archive.2019",
                 "Reisen.Überblick": "INBOX.Reisen.Überblick"}


def test_push_to_cyrus_goes_under_its_prefix_and_what_it_refuses_is_reported(
        cyrus_server, corpus, tmp_path):
    """Cyrus refuses bare LFs and invalid headers with a plain NO (no response code): a
    refusal of that message for good (named, exit 4), not a failure retried at every push."""
    cyrus_server.add_user("carol", SOURCE_PASSWORD)
    fill_archive(tmp_path / "archive", corpus)
    target = Endpoint("imap", port=cyrus_server.imap_port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20, connections=2)
    config = write_world_config(tmp_path, placeholder_source(), target)
    taken = [item for item in corpus if cyrus_server.accepts(item.raw)]
    refused = len(corpus) - len(taken)
    assert refused, "the corpus holds messages Cyrus refuses (bare LF, invalid headers)"

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.PARTIAL, result.stderr
    assert f"pushed {len(taken)}, already there 0, refused {refused}, failed 0" in result.stdout
    assert "Message contains bare newlines" in result.stderr
    assert "Traceback" not in result.stderr
    assert_target_matches(cyrus_server, taken, user="carol", folders=CYRUS_FOLDERS)
    assert push_states(tmp_path / "archive") == {"done": len(taken), "refused": refused}
    again = run_cli("-c", config, "push", "bob")
    assert "pushed 0, already there 0, refused 0, failed 0" in again.stdout
    assert_target_matches(cyrus_server, taken, user="carol", folders=CYRUS_FOLDERS)
