"""Folders of the same role merge at Exchange: all sent mail in Sent Items, all junk in Junk
Email, a message found in both merged folders once (issue 14)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    assert_target_matches,
    fill_archive,
    message,
    placeholder_source,
    push_states,
    target_block,
    target_count,
    write_world_config,
)

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]

MERGED = {"INBOX": "INBOX", "Sent": "Sent Items", "Sent Messages": "Sent Items",
          "Junk": "Junk Email", "Spam": "Junk Email"}


def test_sent_and_junk_folders_merge_once_and_verify(o365, oauth_service, certs, tmp_path):
    shared = message(3, folder="Sent")  # `Sent` carries \Sent (push_world.SPECIAL)
    unique = [message(0), message(1, folder="Sent"), message(2, folder="Sent"), shared,
              message(4, folder="Sent Messages"), message(5, folder="Junk"),
              message(6, folder="Spam"), message(7, folder="Spam")]
    archived = [*unique, replace(shared, folder="Sent Messages")]
    fill_archive(tmp_path / "archive", archived)
    config = write_world_config(tmp_path, placeholder_source(),
                                target_block(o365.imaps_port, certs.ca_cert, oauth_service))

    dry = run_cli("-c", config, "push", "bob", "--dry-run")
    assert dry.status == ExitStatus.OK, dry.stderr
    assert ("Sent Items (well-known name \\Sent; merged with Sent; 1 also in Sent: sent once)"
            in dry.stdout), dry.stdout
    assert "Junk Email (well-known name \\Junk; merged with Junk)" in dry.stdout
    assert f"total: {len(unique)} messages to push" in dry.stdout
    assert target_count(o365) == 0

    first = run_cli("-c", config, "push", "bob")
    assert first.status == ExitStatus.OK, first.stderr
    assert f"pushed {len(unique)}, already there 0, merged 1, refused 0" in first.stdout
    assert "Sent Messages -> Sent Items" in first.stderr + first.stdout
    assert_target_matches(o365, unique, folders=MERGED)
    assert push_states(tmp_path / "archive") == {"done": len(archived)}

    again = run_cli("-c", config, "push", "bob")
    assert again.status == ExitStatus.OK, again.stderr
    assert "pushed 0, already there 0, refused 0" in again.stdout
    assert target_count(o365) == len(unique)

    verified = run_cli("-c", config, "verify", "bob", "--json")
    report = json.loads(verified.stdout)
    assert verified.status == ExitStatus.OK, verified.stdout
    assert report["present"] == report["expected"] == len(unique)
    assert report["merged"] == 1 and report["duplicates"] == report["missing"] == 0
    sent = next(f for f in report["folders"] if f["target"] == "Sent Items")
    assert sent["sources"] == ["Sent", "Sent Messages"] and sent["present"] == 4
