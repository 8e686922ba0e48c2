"""Verify taking the push re-check's listings (engine/verify/listings.py) on every server
profile as the target: with nothing changed since the re-check, no folder is listed again;
a message deleted at the target after it makes that folder listed again and reported missing.
(The Exchange look-alike's case is in test_migrate_verify.py.)"""

from __future__ import annotations

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.config import load
from migrator.engine.events import discard
from migrator.engine.push.job import push_account
from migrator.engine.verify.listings import Listings
from migrator.engine.verify.target import verify_target
from tests.integration.imap_pull_world import imap_client
from tests.integration.profiles import on_each_server
from tests.integration.push_world import (
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    fill_archive,
    message,
    placeholder_source,
    spy_uid_listings,
    write_world_config,
)
from tests.world.configs import Endpoint

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]


@pytest.fixture
def pushed(source_server, tmp_path):
    """Four messages in INBOX and three in Work pushed to the server under test, the
    re-check's listings kept as `migrate` keeps them."""
    source_server.add_user("carol", SOURCE_PASSWORD)
    items = [message(n) for n in range(4)] + [message(n, folder="Work") for n in (10, 11, 12)]
    fill_archive(tmp_path / "archive", items)
    target = Endpoint("imap", port=source_server.imap_port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20, connections=2)
    account = load(write_world_config(tmp_path, placeholder_source(), target)).account("bob")
    manifest = open_manifest(f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}")
    store = BlobStore(tmp_path / "archive")
    appended: dict[int, int] = {}
    listings = Listings()
    result = push_account(account, manifest, store, discard, appended=appended,
                          listings=listings)
    assert result.counts["pushed"] == len(items)
    yield account, manifest, store, appended, listings
    manifest.close()


@on_each_server
def test_nothing_changed_since_the_recheck_lists_no_folder_again(pushed, monkeypatch):
    account, manifest, store, appended, listings = pushed
    assert len(listings.kept) == 2  # the server gave UIDNEXT: both listings kept
    asked = spy_uid_listings(monkeypatch)

    report = verify_target(account, manifest, store, discard, appended=appended,
                           listings=listings)

    assert asked == []
    assert report.ok and report.totals()["present"] == 7


@on_each_server
def test_a_message_deleted_after_the_recheck_is_found_missing(pushed, source_server,
                                                              monkeypatch):
    account, manifest, store, appended, listings = pushed
    client = imap_client(source_server, "carol", SOURCE_PASSWORD)
    work = next(name for _, _, name in client.list_folders() if name.endswith("Work"))
    client.select_folder(work)
    client.delete_messages(client.search("ALL")[:1])
    client.expunge()
    client.logout()
    asked = spy_uid_listings(monkeypatch)

    report = verify_target(account, manifest, store, discard, appended=appended,
                           listings=listings)

    assert asked == [[work]]  # INBOX taken from the re-check, Work listed again
    assert not report.ok
    assert report.totals()["missing"] == 1 and report.totals()["present"] == 6
