"""The order an IMAP pull plans and fetches folders in (engine/imap/pull.py `largest_first`)."""

from __future__ import annotations

from migrator.engine.imap.pull import largest_first
from migrator.sources.imap import Folder, FolderStatus


def folder(name: str) -> Folder:
    return Folder(name, name, "/", ())


def test_most_messages_first_list_order_among_equals_and_no_status_last():
    listed = [folder(name) for name in ("Drafts", "Sent", "Odd", "Archive", "INBOX", "Junk")]
    statuses = {"Drafts": FolderStatus(1, 10, 232), "Sent": FolderStatus(1, 10, 941),
                "Archive": FolderStatus(1, 10, 232), "INBOX": FolderStatus(1, 10, 2514),
                "Junk": FolderStatus(1, 10, None)}

    ordered = largest_first(listed, statuses)

    assert [f.name for f in ordered] == ["INBOX", "Sent", "Drafts", "Archive", "Junk", "Odd"]
