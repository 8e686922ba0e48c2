"""An IMAP mailbox as a read-only source: folders, their state, and message bytes.

Everything here is read-only by construction: folders are opened with EXAMINE and bodies are
fetched with BODY.PEEK[] (RFC 3501 section 6.4.5), so the source never changes, not even
\\Seen. This module knows nothing of the manifest; the engine decides what to ask for.

After login the connection is driven through `imap_wire.Wire` (imapclient's parser is too
slow for bulk FETCH); imapclient is used only to connect and log in.
"""

from __future__ import annotations

import imaplib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from imapclient import IMAPClient

from migrator.errors import MigratorError
from migrator.namespace import Namespace, parse_personal
from migrator.sources.imap_folders import (
    Folder,
    FolderStatus,
    list_with_status,
    status_items,
    status_of,
    wire_text,
)
from migrator.sources.imap_wire import (
    CommandFailed,
    ConnectionClosed,
    Untagged,
    Value,
    Wire,
    pairs,
    quote,
    refused,
)
from migrator.wire import imapconn
from migrator.wire.sequence_set import uid_set

log = logging.getLogger(__name__)

BODY_ITEMS = b"(UID FLAGS INTERNALDATE BODY.PEEK[])"
_CODE = re.compile(rb"\[([A-Z0-9.-]+)(?: ([^\]]*))?\]", re.IGNORECASE)
_FAST_FETCH = re.compile(
    rb'\* \d+ FETCH \(UID (\d+) FLAGS \(([^()"{}]*)\) INTERNALDATE "([^"]*)" BODY\[\] \Z')
_MONTHS = {name: index for index, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DATE = re.compile(rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")


@dataclass(frozen=True, slots=True)  # a first pull holds one per message until it is fetched
class ListedMessage:
    """A message as a listing shows it: enough to plan batches and see flag changes."""

    uid: int
    size: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class SourceMessage:
    """A message exactly as the server served it."""

    uid: int
    flags: tuple[str, ...]
    internaldate: str | None  # ISO 8601 with the server's UTC offset
    data: bytes


class ImapSource:
    """One authenticated connection to an IMAP source."""

    def __init__(self, client: IMAPClient) -> None:
        self.client = client
        try:  # imapclient may ask CAPABILITY again: its errors are classified here too
            capabilities = client.capabilities()
        except (imaplib.IMAP4.error, OSError) as exc:
            failure = imapconn.classify(exc)
            if not isinstance(failure, MigratorError):
                failure = ConnectionClosed(f"CAPABILITY failed: {exc}")
            raise failure from exc
        self.capabilities = frozenset(c.decode("ascii", "replace").upper()
                                      for c in capabilities)
        sock = client.socket()
        self.wire = Wire(sock.sendall, sock.makefile("rb"))
        self.selected: str | None = None
        # SEARCH answers met while reading another command's: UID SEARCH tag (None: a plain
        # SEARCH, which names no command) -> UIDs, for `read_search`
        self.searches: dict[bytes | None, set[int]] = {}

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.capabilities or "QRESYNC" in self.capabilities

    def close(self, logout: bool = True) -> None:
        """Log out politely if the connection still works (`logout=False`: just shut it,
        as when responses are still coming that nobody will read); never raise."""
        if logout:
            try:
                for _ in self.wire.command(b"LOGOUT"):
                    pass
            except Exception:  # BYE, a dead socket, anything: we are leaving anyway
                pass
        try:
            self.client.shutdown()
        except Exception:
            log.debug("socket already closed")

    # -- folders ---------------------------------------------------------------------------
    def namespace(self) -> Namespace | None:
        """The personal namespace (RFC 2342) where the server has NAMESPACE, else None (also
        when it answers NO/BAD: the folders can still be pulled, only their mapping guesses)."""
        if "NAMESPACE" not in self.capabilities:
            return None
        try:
            for response in self.wire.command(b"NAMESPACE"):
                if response.kind == "NAMESPACE":
                    return parse_personal(response.data)
        except CommandFailed as exc:
            log.info("NAMESPACE refused (%s); the push will guess the folder prefix", exc)
        return None

    def folders(self) -> list[Folder]:
        """Every folder LIST shows, in server order."""
        return self.folders_with_status()[0]

    def folders_with_status(self) -> tuple[list[Folder], dict[str, FolderStatus]]:
        """Every folder, and where the server has LIST-STATUS (RFC 5819) their STATUS in the
        same round trip (else an empty dict: ask `statuses`)."""
        return list_with_status(self.wire, self.capabilities, self._status_items())

    def _status_items(self) -> bytes:
        return status_items(self.condstore)

    def statuses(self, folders: Sequence[Folder]) -> dict[str, FolderStatus]:
        """STATUS of every folder in one round trip (commands pipelined); folders the server
        refuses are left out."""
        items = self._status_items()
        tags = [self.wire.send(b"STATUS " + quote(f.raw_name) + b" (" + items + b")")
                for f in folders]
        found: dict[str, FolderStatus] = {}
        if not tags:
            return found
        try:
            for response in self.wire.until(tags[-1]):
                if (status := status_of(response)) is not None:
                    found[status[0]] = status[1]
        except CommandFailed as exc:
            log.info("STATUS of the last folder refused: %s", exc.text)
        return found

    def examine(self, folder: Folder) -> FolderStatus:
        """Open `folder` read-only (EXAMINE) and return its state as of now."""
        return self.read_examine(folder, self.send_examine(folder))

    def send_examine(self, folder: Folder) -> bytes:
        """EXAMINE `folder`; read the answer with `read_examine`. Commands sent after it
        (before the answer) act on that folder, or fail if the server refuses it."""
        self.selected = None
        return self.wire.send(b"EXAMINE " + quote(folder.raw_name)
                              + (b" (CONDSTORE)" if self.condstore else b""))

    def read_examine(self, folder: Folder, tag: bytes) -> FolderStatus:
        codes: dict[bytes, bytes] = {}
        exists = None
        for response in self.wire.until(tag):
            if response.kind == "EXISTS":
                exists = response.number
            elif response.kind == "OK" and response.data:
                codes.update(_codes(response.data[0]))
        self.selected = folder.raw_name
        return FolderStatus(uidvalidity=_int(codes.get(b"UIDVALIDITY")),
                            uidnext=_int(codes.get(b"UIDNEXT")), messages=exists,
                            highestmodseq=_int(codes.get(b"HIGHESTMODSEQ")))

    # -- listings (the selected folder) ----------------------------------------------------
    def listing(self, uids: bytes = b"1:*", sizes: bool = True) -> dict[int, ListedMessage]:
        """UID, RFC822.SIZE (size 0 without `sizes`) and FLAGS of the messages in `uids`."""
        return self.read_listing(self.send_listing(uids, sizes))

    def send_listing(self, uids: bytes = b"1:*", sizes: bool = True) -> bytes:
        items = b" (UID RFC822.SIZE FLAGS)" if sizes else b" (UID FLAGS)"
        return self.wire.send(b"UID FETCH " + uids + items)

    def read_listing(self, tag: bytes) -> dict[int, ListedMessage]:
        found: dict[int, ListedMessage] = {}
        for response in self.wire.until(tag):
            if (listed := _listed(_fetch_item(response) or {})) is not None:
                found[listed.uid] = listed
        return found

    def send_changes(self, modseq: int, sizes: bool = True) -> bytes:
        """Ask for the UID, flags and (`sizes`) size of every message changed after `modseq`
        (RFC 7162 CHANGEDSINCE: new messages are among them). Read with `read_changes`."""
        items = b"(UID FLAGS RFC822.SIZE)" if sizes else b"(UID FLAGS)"
        return self.wire.send(b"UID FETCH 1:* " + items + b" (CHANGEDSINCE %d)" % modseq)

    def read_changes(self, search: bytes, changes: bytes, sizes: bool = True
                     ) -> tuple[set[int], dict[int, ListedMessage]]:
        """Every UID (the UID SEARCH `search`) and the listing of what changed (the FETCH
        `changes`; with `sizes`, only answers that carry a size: unsolicited ones may not).

        A server may run the two at once and interleave their answers (Dovecot does; RFC
        9051 section 5.5), so each answer is told apart by its kind, not by when it comes."""
        uids: set[int] = set()
        changed: dict[int, ListedMessage] = {}
        for response in self.read_all((search, changes)):
            if response.kind in ("SEARCH", "ESEARCH"):
                uids |= _search_answer(response)[1]
            elif (item := _fetch_item(response)) is not None:
                listed = _listed(item)
                sized = isinstance(item.get(b"RFC822.SIZE"), int)
                if listed is not None and (sized or not sizes):
                    changed[listed.uid] = listed
        return uids, changed

    def read_all(self, tags: Iterable[bytes]) -> Iterator[Untagged]:
        """Untagged answers until every command of `tags` is complete, in whatever order the
        server completes them; the first NO/BAD is raised once all are (throttling or an
        expired token at once: the connection is given up for it anyway)."""
        pending = set(tags)
        failure: CommandFailed | None = None
        while pending:
            response = self.wire.read()
            if isinstance(response, Untagged):
                yield response
                continue
            if response.tag not in pending:
                continue  # an earlier command's, read already
            pending.discard(response.tag)
            if response.status != "OK":
                error = refused(response.status, response.text)
                if not isinstance(error, CommandFailed):
                    raise error
                failure = failure or error
        if failure is not None:
            raise failure

    def drain(self, tags: Iterable[bytes]) -> None:
        """Read the answers of commands sent and no longer wanted (one before them failed),
        whatever they say, so the connection has nothing left unread."""
        try:
            for _ in self.read_all(tags):
                pass
        except CommandFailed:
            pass

    def uids(self) -> set[int]:
        """Every UID in the selected folder."""
        return self.read_search(self.send_search(None))

    def send_search(self, uids: Iterable[int] | None) -> bytes:
        """Ask which of `uids` (all when None) exist; ESEARCH keeps the answer short
        (RFC 4731). Read the answer with `read_search`."""
        criteria = b"ALL" if uids is None else b"UID " + uid_set(uids)
        esearch = "ESEARCH" in self.capabilities
        return self.wire.send(b"UID SEARCH " + (b"RETURN (ALL) " if esearch else b"")
                              + criteria)

    def read_search(self, tag: bytes) -> set[int]:
        """The UIDs the SEARCH `tag` found, its answer taken also where it came while an
        earlier command's was read (a server may run a SEARCH at once with the FETCH before
        it, and answer it first: without this, the UIDs a batch still missed would look
        gone from the folder, and never be fetched or recorded as failed)."""
        found = self.searches.pop(tag, set()) | self.searches.pop(None, set())
        for response in self.wire.until(tag):
            if response.kind in ("SEARCH", "ESEARCH"):
                answered, uids = _search_answer(response)
                if answered in (None, tag):
                    found |= uids
                else:
                    self._keep_search(answered, uids)
        return found

    def _keep_search(self, answered: bytes | None, uids: set[int]) -> None:
        self.searches.setdefault(answered, set()).update(uids)

    # -- bodies --------------------------------------------------------------------------
    def send_fetch(self, uids: Iterable[int]) -> bytes:
        """Ask for bodies (and flags, INTERNALDATE) of `uids`; return the command's tag.

        Several may be in flight; read each with `read_fetch` in the order sent.
        """
        return self.wire.send(b"UID FETCH " + uid_set(uids) + b" " + BODY_ITEMS)

    def read_fetch(self, tag: bytes) -> Iterator[SourceMessage]:
        """Messages of the FETCH `tag` as they arrive; CommandFailed if it ends NO/BAD.

        A FETCH response without a body (e.g. Exchange's empty answer for a listed UID,
        or an unsolicited flag update) is not yielded: the caller sees the UID missing.
        """
        wire = self.wire
        while True:
            parts = wire.read_parts()
            if len(parts) == 3 and parts[2] == b")":
                fast = _FAST_FETCH.match(parts[0])
                if fast is not None:  # the usual shape, in the order asked for
                    message = SourceMessage(int(fast.group(1)), _flags_text(fast.group(2)),
                                            internaldate_iso(fast.group(3)), parts.pop(1))
                    yield message
                    del message  # hold no body while the next one is read
                    continue
            response = wire.interpret(parts)
            del parts
            if isinstance(response, Untagged) and response.kind in ("SEARCH", "ESEARCH"):
                self._keep_search(*_search_answer(response))  # answered before this ends
            elif isinstance(response, Untagged):
                item = _fetch_item(response)
                found = _message(item) if item is not None else None
                del response, item
                if found is not None:
                    yield found
                    del found
            elif wire.finished(response, tag):
                return


def _fetch_item(response: Untagged) -> dict[bytes, Value] | None:
    return pairs(response.data) if response.kind == "FETCH" else None


def _message(item: dict[bytes, Value]) -> SourceMessage | None:
    uid, data = item.get(b"UID"), item.get(b"BODY[]")
    if not isinstance(uid, int) or not isinstance(data, bytes):
        return None
    date = item.get(b"INTERNALDATE")
    return SourceMessage(uid=uid, flags=flags_of(item.get(b"FLAGS")),
                         internaldate=internaldate_iso(date) if isinstance(date, bytes) else None,
                         data=data)


def _codes(text: Value) -> dict[bytes, bytes]:
    if not isinstance(text, bytes):
        return {}
    return {m.group(1).upper(): (m.group(2) or b"") for m in _CODE.finditer(text)}


def _int(value: bytes | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _listed(item: dict[bytes, Value]) -> ListedMessage | None:
    """A listing FETCH answer's UID, size (0 when not asked) and flags; None without a UID."""
    uid, size = item.get(b"UID"), item.get(b"RFC822.SIZE")
    if not isinstance(uid, int):
        return None
    return ListedMessage(uid, size if isinstance(size, int) else 0, flags_of(item.get(b"FLAGS")))


def _search_answer(response: Untagged) -> tuple[bytes | None, set[int]]:
    """(the tag an ESEARCH answer names, None for a plain SEARCH; the UIDs found)."""
    if response.kind == "SEARCH":
        return None, {v for v in response.data if isinstance(v, int)}
    first = response.data[0] if response.data else None
    tag = (first[1] if isinstance(first, list) and len(first) == 2
           and isinstance(first[0], bytes) and first[0].upper() == b"TAG"
           and isinstance(first[1], bytes) else None)
    return tag, _esearch_all(response.data)


def _esearch_all(data: list[Value]) -> set[int]:
    for index, value in enumerate(data[:-1]):
        if isinstance(value, bytes) and value.upper() == b"ALL":
            return parse_uid_set(data[index + 1])
    return set()


def flags_of(value: Value) -> tuple[str, ...]:
    """System flags and keywords as served; \\Recent is session state, not a flag."""
    if not isinstance(value, list):
        return ()
    flags = (wire_text(flag) for flag in value if isinstance(flag, (bytes, int)))
    return tuple(sorted({flag for flag in flags if flag.lower() != "\\recent"}))


def _flags_text(text: bytes) -> tuple[str, ...]:
    flags = text.decode("utf-8", "replace").split()
    return tuple(sorted({flag for flag in flags if flag.lower() != "\\recent"}))


def internaldate_iso(value: bytes) -> str | None:
    """`17-Jul-1996 02:44:25 -0700` as `1996-07-17T02:44:25-07:00` (offset kept)."""
    match = _DATE.match(value)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    number = _MONTHS.get(month.decode("ascii").lower())
    if number is None:
        return None
    return (f"{int(year):04d}-{number:02d}-{int(day):02d}T{hour.decode()}:{minute.decode()}:"
            f"{second.decode()}{sign.decode()}{off_h.decode()}:{off_m.decode()}")


def parse_uid_set(value: Value) -> set[int]:
    """An explicit sequence set (no `*`) such as 1:3,7 as {1, 2, 3, 7}."""
    if isinstance(value, int):
        return {value}
    if not isinstance(value, bytes):
        return set()
    found: set[int] = set()
    for part in value.split(b","):
        low, _, high = part.partition(b":")
        if low.isdigit() and (not high or high.isdigit()):
            first, last = int(low), int(high or low)
            found.update(range(min(first, last), max(first, last) + 1))
    return found


__all__ = ["CommandFailed", "ConnectionClosed", "Folder", "FolderStatus", "ImapSource",
           "ListedMessage", "SourceMessage"]
