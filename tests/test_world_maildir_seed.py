"""The bulk Maildir seed (tests/world/maildir_seed.py) is served as if the mail had been
delivered: the benchmarks' 100,000-message mailbox is only as good as this."""
import datetime

import imapclient
import pytest

from tests.world.corpus import iterate
from tests.world.mailstore import SeedMessage, as_imap_bytes

UTC = datetime.UTC
pytestmark = pytest.mark.world
FOLDERS = ("INBOX", "Sent", "Lists.python", "Reisen.Überblick")


def test_a_bulk_seeded_mailbox_is_served_byte_for_byte(source_server, closing):
    source_server.add_user("bulk", "pw")
    corpus = list(iterate(seed=7, count=40, max_size=8000))  # every oddity, bare LF too
    odd = SeedMessage(b"Subject: odd\nFrom: a@example.org\n\nbare LF\n",
                      ("\\Flagged", "\\Answered", "Work"),
                      datetime.datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC))
    placed = [(FOLDERS[i % len(FOLDERS)], m) for i, m in enumerate(corpus)]
    placed.append(("Lists.python", odd))

    counts = source_server.seed_mailbox("bulk", iter(placed))

    expected = {folder: [m for f, m in placed if f == folder] for folder in FOLDERS}
    assert counts == {folder: len(items) for folder, items in expected.items()}
    client = closing(imapclient.IMAPClient(source_server.host, source_server.imap_port,
                                           ssl=False))
    client.normalise_times = False
    client.login("bulk", "pw")
    listed = {name for flags, _, name in client.list_folders() if b"\\Noselect" not in flags}
    assert set(FOLDERS) <= listed
    for folder, items in expected.items():
        assert client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"] == len(items)
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search("ALL"),
                               ["BODY.PEEK[]", "RFC822.SIZE", "FLAGS", "INTERNALDATE"])
        assert sorted(fetched) == list(range(1, len(items) + 1))  # UIDs in the order given
        for uid, message in zip(sorted(fetched), items, strict=True):
            served = as_imap_bytes(bytes(message.raw))
            data = fetched[uid]
            assert data[b"BODY[]"] == served
            assert data[b"RFC822.SIZE"] == len(served)
            assert {f.decode() for f in data[b"FLAGS"]} - {"\\Recent"} == set(message.flags)
            assert data[b"INTERNALDATE"] == message.internaldate
    client.logout()
