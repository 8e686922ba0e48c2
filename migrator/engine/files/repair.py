"""Repair from a file source: read the damaged messages again from the files, by key.

Whatever is read is offered to the repair's `Restorer`, which keeps it only when it hashes to
the damaged blob's name, so a file changed since the import can never replace archived
content with something else.
"""

from __future__ import annotations

from collections import defaultdict

from migrator.config import Account
from migrator.engine.files.records import stored_key
from migrator.engine.repair.damage import Damaged, Restorer
from migrator.sources.files import FileFolder, open_source


def from_files(account: Account, damaged: list[Damaged], restorer: Restorer) -> dict[str, str]:
    """Read again by folder and key; returns why a folder could not be read."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for item in damaged:
        for copy in item.copies:
            if copy.uidl is not None:
                wanted[copy.folder].add(copy.uidl)
    source = open_source(account.source.kind, str(account.source.path))
    problems: dict[str, str] = {}
    try:
        present = {folder.name: folder for folder in source.folders()}
        for name, keys in sorted(wanted.items()):
            if name not in present:
                problems[name] = f"folder {name} is no longer in {account.source.path}"
                continue
            try:
                for message in source.messages(FileFolder(name)):
                    if stored_key(message.key) in keys:
                        restorer.offer(message.read())
            except OSError as exc:
                problems[name] = f"cannot read folder {name}: {exc.strerror}"
    finally:
        source.close()
    return problems
