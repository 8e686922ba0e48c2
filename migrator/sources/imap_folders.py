"""Folders as LIST and STATUS show them: the figures that tell whether a folder changed.

Apart from `imap.py` (which needs imapclient to connect) so that the no-op probe can read a
LIST and STATUS reply with the same parser as a pull, loading nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator import imap_utf7
from migrator.sources.imap_wire import Untagged, Value, Wire, pairs

SPECIAL_USE = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


@dataclass(frozen=True)
class Folder:
    """A folder as LIST shows it."""

    name: str  # decoded from modified UTF-7 (RFC 3501 section 5.1.3)
    raw_name: str  # as on the wire
    delimiter: str | None
    attributes: tuple[str, ...]

    @property
    def selectable(self) -> bool:
        lowered = {attribute.lower() for attribute in self.attributes}
        return not lowered & {"\\noselect", "\\nonexistent"}

    @property
    def special_use(self) -> str | None:
        return next((a for a in self.attributes if a in SPECIAL_USE), None)


@dataclass(frozen=True)
class FolderStatus:
    """STATUS (or EXAMINE) figures: enough to tell whether a folder changed."""

    uidvalidity: int | None
    uidnext: int | None
    messages: int | None
    highestmodseq: int | None = None


def folder_of(response: Untagged) -> Folder | None:
    """The folder a LIST response names (None for any other response)."""
    if response.kind != "LIST" or len(response.data) < 3:
        return None
    attributes, delimiter, name = response.data[0], response.data[1], response.data[2]
    if not isinstance(attributes, list) or not isinstance(name, (bytes, int)):
        return None
    raw = wire_text(name)
    return Folder(name=decoded_name(raw), raw_name=raw,
                  delimiter=delimiter.decode("ascii", "replace")
                  if isinstance(delimiter, bytes) else None,
                  attributes=tuple(wire_text(a) for a in attributes if isinstance(a, bytes)))


def decoded_name(raw: str) -> str:
    """A wire name decoded from modified UTF-7 (plain ASCII without '&' is itself)."""
    if raw.isascii() and "&" not in raw:
        return raw
    return imap_utf7.decode(raw.encode("ascii", "replace"))


def status_of(response: Untagged) -> tuple[str, FolderStatus] | None:
    """(wire name, figures) of a STATUS response (None for any other response)."""
    if response.kind != "STATUS" or len(response.data) < 2:
        return None
    name, values = response.data[0], response.data[1]
    if not isinstance(name, (bytes, int)) or not isinstance(values, list):
        return None
    return wire_text(name), _status(pairs(values))


def wire_text(value: bytes | int) -> str:
    return str(value) if isinstance(value, int) else value.decode("utf-8", "replace")


def _status(values: dict[bytes, Value]) -> FolderStatus:
    def number(key: bytes) -> int | None:
        value = values.get(key)
        return value if isinstance(value, int) else None

    return FolderStatus(uidvalidity=number(b"UIDVALIDITY"), uidnext=number(b"UIDNEXT"),
                        messages=number(b"MESSAGES"), highestmodseq=number(b"HIGHESTMODSEQ"))


def status_items(condstore: bool) -> bytes:
    """The STATUS items a pull asks for (HIGHESTMODSEQ only where the server has CONDSTORE)."""
    return b"MESSAGES UIDNEXT UIDVALIDITY" + (b" HIGHESTMODSEQ" if condstore else b"")


def list_with_status(wire: Wire, capabilities: frozenset[str] | set[str], items: bytes
                     ) -> tuple[list[Folder], dict[str, FolderStatus]]:
    """Every folder LIST shows, and where the server has LIST-STATUS (RFC 5819) the STATUS
    `items` of each in the same round trip (else an empty dict)."""
    command = b'LIST "" "*"'
    if "LIST-STATUS" in capabilities:
        command += b" RETURN (STATUS (" + items + b"))"
    folders: list[Folder] = []
    found: dict[str, FolderStatus] = {}
    for response in wire.command(command):
        if (folder := folder_of(response)) is not None:
            folders.append(folder)
        elif (status := status_of(response)) is not None:
            found[status[0]] = status[1]
    return folders, found

