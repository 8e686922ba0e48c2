"""The target's control connection: folders, SELECT, the index of a folder, flags.

Everything but APPEND goes through here, on one imapclient connection that reconnects (with
a fresh token after `AccessTokenExpired`) and retries after throttling, through the shared
retry helper (whose waits end when `stop` is set). Library errors are classified here, where
they enter; a reply that is not worth retrying becomes a FolderError naming the folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from migrator.auth import TokenProvider
from migrator.config import Endpoint
from migrator.errors import (
    ConnectError,
    ConnectionLost,
    FolderError,
    MigratorError,
    RetryableError,
    TokenExpired,
)
from migrator.folders import ROLES, TargetFolder, TargetLayout
from migrator.retry import RetryPolicy, Stop, retry
from migrator.targets.append_items import Selected
from migrator.targets.folder_create import create_folders
from migrator.targets.folder_list import namespace_and_folders
from migrator.targets.folder_status import TargetFolderStatus, folder_statuses
from migrator.targets.folder_uids import SelectInfo, folder_uids
from migrator.targets.identity import INDEX_FIELDS, TargetEntry, identity_of
from migrator.wire import imapconn
from migrator.wire.replies import as_text

log = logging.getLogger(__name__)
T = TypeVar("T")

INDEX_BATCH = 2000
BODY_BATCH_BYTES = 16 << 20
FLAGS_BATCH = 500


def _reason(exc: BaseException) -> str:
    """The server's words from a library exception (`b'...'` wrapping removed)."""
    text = str(exc)
    if text[:2] in ("b'", 'b"') and text.endswith(text[1]):
        text = text[2:-1]
    return text.strip() or exc.__class__.__name__


def _epoch(value: Any) -> int | None:
    """INTERNALDATE as epoch seconds (a naive value is taken as UTC)."""
    if not isinstance(value, datetime):
        return None
    return int(value.timestamp() if value.tzinfo else value.replace(tzinfo=UTC).timestamp())


def _selected(name: str, info: SelectInfo) -> Selected:
    flags = info.get(b"PERMANENTFLAGS")
    uidnext = info.get(b"UIDNEXT")
    return Selected(name, info.get(b"UIDVALIDITY"), int(info.get(b"EXISTS", 0)),
                    tuple(as_text(f) for f in flags) if flags is not None else None,
                    int(uidnext) if uidnext is not None else None)


# reconnecting at once is right after a lost session; throttling says how long
RECONNECTS = RetryPolicy(attempts=8, base_delay=0.1)


class TargetControl:
    """One reconnecting control connection to the target mailbox."""

    def __init__(self, endpoint: Endpoint, account: str, tokens: TokenProvider | None = None,
                 *, policy: RetryPolicy | None = None, stop: Stop | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.endpoint = endpoint
        self.account = account
        self.tokens = tokens
        self.policy = policy or RECONNECTS
        self.stop = stop
        self.sleep = sleep
        self._client: IMAPClient | None = None
        self._namespace: tuple[str, Any] | None = None  # this session's personal namespace
        self._refresh = False
        self.reconnects = 0

    # -- connection ---------------------------------------------------------------------
    def client(self) -> IMAPClient:
        """The connection; made now if there is none. A failed reconnect (not the first
        connect, not a refused login) is worth another try, like the session it replaces."""
        if self._client is None:
            try:
                self._client = imapconn.connect(self.endpoint, self.account, self.tokens,
                                                force_refresh=self._refresh)
            except ConnectError as exc:
                if not self.reconnects:
                    raise
                raise ConnectionLost(f"reconnect failed: {exc}") from exc
            self._client.normalise_times = False  # INTERNALDATE with its offset
            self._refresh = False
        return self._client

    def capabilities(self) -> frozenset[str]:
        return self.run("CAPABILITY", lambda c: frozenset(
            as_text(cap).upper() for cap in c.capabilities()))

    def close(self) -> None:
        if self._client is not None:
            imapconn.close_quietly(self._client)
            self._client = None
            self._namespace = None

    def _reset(self, exc: BaseException, _attempt: int) -> None:
        self._refresh = self._refresh or isinstance(exc, TokenExpired)
        self.reconnects += 1
        self.close()

    def run(self, what: str, operation: Callable[[IMAPClient], T]) -> T:
        """Run `operation` on the connection, reconnecting and retrying what is retryable."""
        def attempt() -> T:
            client = self.client()
            try:
                return operation(client)
            except MigratorError:
                raise
            except Exception as exc:
                mapped = imapconn.classify(exc)
                if isinstance(mapped, RetryableError):
                    raise mapped from exc
                raise FolderError(f"{self.account}: target {what}: {_reason(exc)}") from None

        return retry(attempt, policy=self.policy, on_error=self._reset, stop=self.stop,
                     sleep=self.sleep, what=f"{self.account}: target {what}")

    # -- folders ------------------------------------------------------------------------
    def layout(self) -> TargetLayout:
        """Delimiter, personal prefix and existing folders (with special-use) of the target.

        NAMESPACE is asked once per session (a session's namespaces do not change), sent
        with the first LIST (`folder_list.py`); the LIST of a verify after a push on the
        same connection is its only round trip."""
        def read(client: IMAPClient) -> TargetLayout:
            if self._namespace is None:  # both in one round trip
                self._namespace, listed = namespace_and_folders(client)
            else:
                listed = client.list_folders()
            prefix, delimiter = self._namespace
            folders = []
            for flags, found_delimiter, name in listed:
                delimiter = delimiter or found_delimiter
                attributes = {as_text(flag) for flag in flags}
                if {"\\Noselect", "\\NonExistent"} & attributes:
                    continue
                special = next((role for role in ROLES if role in attributes), None)
                folders.append(TargetFolder(as_text(name), special))
            kind = "office365" if self.endpoint.kind == "office365" else "imap"
            return TargetLayout(kind, as_text(delimiter or "/"), prefix, tuple(folders))

        return self.run("LIST", read)

    def create(self, path: str, role: str | None = None) -> None:
        """CREATE one folder (its parents must exist) and subscribe it; `role` (a special-use
        attribute) goes with it where the target offers CREATE-SPECIAL-USE (RFC 6154), so mail
        clients find the folder by its role."""
        self.run(f"CREATE {path}", partial(self._create, path=path, role=role))

    def missing(self, names: Sequence[str], layout: TargetLayout,
                roles: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
        """What creating each of `names` takes: the missing folders, parents first, each once:
        (path, role); a role (of `roles`) goes to the folder it names, not to its parents."""
        existing = {self._key(f.name, layout) for f in layout.existing}
        wanted: list[tuple[str, str | None]] = []
        for name in names:
            parts = name.split(layout.delimiter)
            for depth in range(1, len(parts) + 1):
                path = layout.delimiter.join(parts[:depth])
                key = self._key(path, layout)
                if key in existing or path.upper() == "INBOX" \
                        or path + layout.delimiter == layout.prefix:
                    continue
                existing.add(key)
                wanted.append((path, (roles or {}).get(path)))
        return wanted

    def create_all(self, wanted: Sequence[tuple[str, str | None]]) -> dict[str, bool]:
        """CREATE (and SUBSCRIBE) each (path, role), parents first, in one round trip: path
        -> whether it was created. What failed is for `create`, which says why."""
        if not wanted:
            return {}
        created = self.run(f"CREATE of {len(wanted)} folders", lambda c: create_folders(
            c, wanted, c.has_capability("CREATE-SPECIAL-USE")))
        for path, done in created.items():
            if done:
                log.info("%s: created target folder %s", self.account, path)
        return created

    def select_all(self, names: Sequence[str]) -> dict[str, Selected | None]:
        """SELECT each folder in one round trip (None: refused there; `select` of that
        folder alone says why)."""
        def read(client: IMAPClient) -> dict[str, Selected | None]:
            return {name: _selected(name, found[0]) if found else None
                    for name, found in folder_uids(client, names, search=False).items()}

        return self.run(f"SELECT of {len(names)} folders", read) if names else {}

    @staticmethod
    def _key(name: str, layout: TargetLayout) -> str:
        return name.casefold() if layout.case_insensitive else name

    def _create(self, client: IMAPClient, path: str, role: str | None = None) -> None:
        try:
            if role and client.has_capability("CREATE-SPECIAL-USE"):
                self._create_special(client, path, role)
            else:
                client.create_folder(path)
        except Exception as exc:
            if isinstance(imapconn.classify(exc), RetryableError) or not client.folder_exists(path):
                raise
        try:
            client.subscribe_folder(path)
        except Exception:  # subscriptions are a courtesy to mail clients
            log.debug("could not subscribe %s", path)
        log.info("%s: created target folder %s", self.account, path)

    @staticmethod
    def _create_special(client: IMAPClient, path: str, role: str) -> None:
        """CREATE with USE; a server that will not take the role gets a plain CREATE."""
        try:
            typ, data = client._imap._simple_command(  # imapclient's CREATE takes no USE
                "CREATE", client._normalise_folder(path), f"(USE ({role}))")
            if typ != "OK":
                raise IMAPClientError(b" ".join(d for d in data if isinstance(d, bytes)))
        except Exception as exc:
            if isinstance(imapconn.classify(exc), RetryableError) or client.folder_exists(path):
                raise
            log.info("target refused special use %s for %s (%s); creating it plainly",
                     role, path, _reason(exc))
            client.create_folder(path)

    def statuses(self, names: Sequence[str]) -> dict[str, TargetFolderStatus | None]:
        """STATUS of every folder named, pipelined (None: the target refuses the folder)."""
        return self.run("STATUS", lambda c: folder_statuses(c, names)) if names else {}

    def select(self, name: str) -> Selected:
        return self.run(f"SELECT {name}", lambda c: self._select(c, name))

    @staticmethod
    def _select(client: IMAPClient, name: str) -> Selected:
        return _selected(name, client.select_folder(name))

    # -- messages -----------------------------------------------------------------------
    def uids(self, name: str) -> tuple[Selected, set[int]]:
        """SELECT a folder and list its UIDs: the cheap check that recorded pushes are there."""
        def read(client: IMAPClient) -> tuple[Selected, set[int]]:
            selected = self._select(client, name)
            return selected, (set(client.search("ALL")) if selected.exists else set())

        return self.run(f"UID SEARCH in {name}", read)

    def uids_of(self, names: Sequence[str]) -> dict[str, tuple[Selected, set[int]] | None]:
        """`uids` of several folders in one round trip (None: SELECT or SEARCH failed there;
        `uids` of that folder alone says why)."""
        def read(client: IMAPClient) -> dict[str, tuple[Selected, set[int]] | None]:
            return {name: (_selected(name, found[0]), found[1]) if found else None
                    for name, found in folder_uids(client, names).items()}

        return self.run(f"UID SEARCH in {len(names)} folders", read) if names else {}

    def index(self, name: str, only: Collection[int] | None = None
              ) -> tuple[Selected, list[TargetEntry]]:
        """Every message of a folder (or those of its UIDs in `only`): UID, size and
        identity (header fields only). UIDs of `only` are fetched without a UID SEARCH
        first: the caller has just listed them, and one the folder lacks gives nothing."""
        def read(client: IMAPClient) -> tuple[Selected, list[TargetEntry]]:
            selected = self._select(client, name)
            if selected.exists == 0:
                return selected, []
            uids = sorted(client.search("ALL") if only is None else only)
            entries = []
            for start in range(0, len(uids), INDEX_BATCH):
                chunk = uids[start:start + INDEX_BATCH]
                fetched = client.fetch(chunk, [b"RFC822.SIZE", b"INTERNALDATE",
                                               f"BODY.PEEK[HEADER.FIELDS ({INDEX_FIELDS})]"])
                asked = set(chunk)
                for uid, data in fetched.items():
                    if uid not in asked:  # an unsolicited FETCH (a flag changed elsewhere)
                        continue
                    head = next((v for k, v in data.items() if k.startswith(b"BODY[")), b"")
                    entries.append(TargetEntry(uid, int(data.get(b"RFC822.SIZE", 0)),
                                               identity_of(head or b""),
                                               _epoch(data.get(b"INTERNALDATE"))))
            return selected, entries

        return self.run(f"index of {name}", read)

    def bodies(self, name: str, uids: Sequence[tuple[int, int]]) -> Iterator[tuple[int, bytes]]:
        """(uid, bytes) for (uid, size) pairs, fetched in batches of bounded size."""
        batch: list[int] = []
        total = 0
        for uid, size in [*uids, (0, -1)]:
            if batch and (size < 0 or total + size > BODY_BATCH_BYTES):
                wanted = tuple(batch)
                yield from self.run(f"FETCH from {name}",
                                    partial(self._bodies, name=name, uids=wanted))
                batch, total = [], 0
            if size >= 0:
                batch.append(uid)
                total += size

    @staticmethod
    def _bodies(client: IMAPClient, name: str, uids: tuple[int, ...]) -> list[tuple[int, bytes]]:
        client.select_folder(name, readonly=True)
        fetched = client.fetch(list(uids), [b"BODY.PEEK[]"])
        return [(uid, bytes(data.get(b"BODY[]", b""))) for uid, data in fetched.items()]

    def add_flags(self, name: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        """STORE +FLAGS on UIDs of a folder (Exchange: \\Flagged after APPEND)."""
        for start in range(0, len(uids), FLAGS_BATCH):
            chunk = list(uids[start:start + FLAGS_BATCH])

            def store(client: IMAPClient, chunk: list[int] = chunk) -> None:
                client.select_folder(name)
                client.add_flags(chunk, list(flags), silent=True)

            self.run(f"STORE flags in {name}", store)
