"""A quick, read-only look at an IMAP source with the standard library alone: log in, LIST
with STATUS, log out.

For the no-op probe, which must prove "nothing changed" before a command pays for imapclient,
SQLAlchemy and MSAL. Only password logins (XOAUTH2 needs a token provider). TLS follows the
endpoint exactly as `wire.imapconn` does (the same context, the same `security`), and the
replies are read and parsed by the pull's own reader and parsers. Anything unexpected raises;
the probe's caller then falls through to the full path, which reports it properly.
"""

from __future__ import annotations

import contextlib
import imaplib
from typing import BinaryIO, cast

from migrator.config import Endpoint
from migrator.errors import AuthError
from migrator.sources.imap_folders import Folder, FolderStatus, folder_of, status_items, status_of
from migrator.sources.imap_wire import Wire, quote
from migrator.wire.greeting import greeting_timeout
from migrator.wire.tls import tls_context


class QuickSource:
    """One logged-in connection; `close()` logs out."""

    def __init__(self, endpoint: Endpoint) -> None:
        if endpoint.auth != "password" or endpoint.password is None:
            raise AuthError("the quick look logs in with a password only")
        timeout = greeting_timeout(endpoint)
        if endpoint.security == "tls":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                endpoint.host, endpoint.port, ssl_context=tls_context(endpoint), timeout=timeout)
        else:
            client = imaplib.IMAP4(endpoint.host, endpoint.port, timeout=timeout)
        self._client = client
        try:
            if endpoint.security == "starttls":
                client.starttls(tls_context(endpoint))
            client.sock.settimeout(endpoint.timeout)
            client.login(endpoint.username, endpoint.password.resolve())
            self.wire = Wire(client.sock.sendall, cast(BinaryIO, client.file))
            self.capabilities = self._capabilities(client)
        except BaseException:
            self._shutdown()
            raise

    def _capabilities(self, client: imaplib.IMAP4) -> frozenset[str]:
        """What the server offers once logged in: told with the LOGIN reply (imaplib keeps
        the response code among the untagged responses), else asked."""
        told = client.untagged_responses.pop("CAPABILITY", None)
        words: list[bytes] = told[-1].split() if told and isinstance(told[-1], bytes) else []
        if not words:
            for response in self.wire.command(b"CAPABILITY"):
                if response.kind == "CAPABILITY":
                    words += [word for text in response.data if isinstance(text, bytes)
                              for word in text.split()]
        return frozenset(word.decode("ascii", "replace").upper() for word in words)

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.capabilities or "QRESYNC" in self.capabilities

    def folders_with_status(self) -> tuple[list[Folder], dict[str, FolderStatus]]:
        """Every folder LIST shows and the STATUS of each selectable one, as
        `ImapSource.folders_with_status` and `statuses` together ask them (one round trip
        with LIST-STATUS, else two: the STATUS commands pipelined)."""
        items = status_items(self.condstore)
        command = b'LIST "" "*"'
        if "LIST-STATUS" in self.capabilities:
            command += b" RETURN (STATUS (" + items + b"))"
        folders: list[Folder] = []
        found: dict[str, FolderStatus] = {}
        for response in self.wire.command(command):
            if (folder := folder_of(response)) is not None:
                folders.append(folder)
            elif (status := status_of(response)) is not None:
                found[status[0]] = status[1]
        missing = [f for f in folders if f.selectable and f.raw_name not in found]
        tags = [self.wire.send(b"STATUS " + quote(f.raw_name) + b" (" + items + b")")
                for f in missing]
        if tags:  # a refused STATUS raises: the probe then declines
            for tag in tags:
                for response in self.wire.until(tag):
                    if (status := status_of(response)) is not None:
                        found[status[0]] = status[1]
        return folders, found

    def close(self) -> None:
        """Log out politely; never raise (we are leaving anyway)."""
        with contextlib.suppress(Exception):
            for _ in self.wire.command(b"LOGOUT"):
                pass
        self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._client.shutdown()
