"""Mail kept in files (mbox, Maildir, .eml trees, PST) read as a source like a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class FileFolder:
    """A folder of a file source: its name with "/" between levels, and its role if known."""

    name: str
    # "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", or "\\Inbox" (not an IMAP
    # attribute: a PST's Inbox under its own name, which a push maps to INBOX)
    special_use: str | None = None


@dataclass(frozen=True)
class FileMessage:
    """One message: `key` names it for good within its folder (re-runs find it again)."""

    key: str
    internaldate: datetime
    flags: tuple[str, ...]
    size: int
    read: Callable[[], bytes]  # the message bytes, loaded only when archived
    # keys an earlier migrator gave this message: a row found under one is re-keyed, so an
    # archive imported before a reader's keys changed is not imported (and pushed) again
    former_keys: tuple[str, ...] = ()


class FileSource(Protocol):
    def folders(self) -> list[FileFolder]: ...
    def messages(self, folder: FileFolder) -> Iterator[FileMessage]: ...
    def close(self) -> None: ...


# -- the readers ----------------------------------------------------------------------------
# kind -> "module:class" under this package; the class is called with the configured path.
# Loaded by name so that a reader's dependencies (PST) are needed only when it is used.
READERS: dict[str, str] = {
    "mbox": "mbox:MboxSource",
    "maildir": "maildir:MaildirSource",
    "eml": "eml:EmlSource",
    "pst": "pst:open_pst",
}


def open_source(kind: str, path: str) -> FileSource:
    """The reader for `kind` on `path`; raises what the reader raises for a bad path."""
    import importlib

    module, _, name = READERS[kind].partition(":")
    reader: Callable[[str], FileSource] = getattr(
        importlib.import_module(f"{__name__}.{module}"), name)
    return reader(path)

