"""NAMESPACE and LIST in one round trip: both sent before either answer is read.

A push, a migrate and a verify each begin by learning the target's folders: its personal
namespace (prefix and separator, once per session) and the folders LIST shows. Asked one
after the other that is two round trips before anything else can start; LIST does not
depend on NAMESPACE's answer, so both go out together. As `folder_uids.py` does for SELECT,
the commands are sent with imaplib's `_command` and each answer read with
`_command_complete`, both read even when the first fails.
"""

from __future__ import annotations

import imaplib
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.response_parser import parse_response
from imapclient.util import to_unicode

from migrator.targets.folder_uids import complete

Listed = list[tuple[tuple[bytes, ...], bytes, str]]  # imapclient's list_folders()


def namespace_and_folders(client: IMAPClient) -> tuple[tuple[str, str | None], Listed]:
    """((prefix, separator) of the first personal namespace, ("", None) without one or when
    NAMESPACE is refused; every folder LIST "" "*" shows). A refused LIST raises."""
    if not client.has_capability("NAMESPACE"):
        return ("", None), client.list_folders()
    imap: Any = client._imap
    imap.untagged_responses.clear()  # answers to earlier commands, read and used already
    namespace = imap._command("NAMESPACE")
    listing = imap._command("LIST", client._normalise_folder(""),
                            client._normalise_folder("*"))
    try:
        asked = complete(imap, "NAMESPACE", namespace)
        _, spaces = imap._untagged_response(asked, [None], "NAMESPACE")
        listed = complete(imap, "LIST", listing)
        _, folders = imap._untagged_response(listed, [None], "LIST")
    except imaplib.IMAP4.abort as exc:  # the connection died: say both were under way
        raise imaplib.IMAP4.abort(f"NAMESPACE and LIST: {exc}") from exc
    imap.untagged_responses.clear()
    if listed != "OK":
        raise IMAPClientError(f"LIST refused ({listed})")
    personal = _personal(spaces, client.folder_encode) if asked == "OK" else ("", None)
    return personal, client._proc_folder_list(folders)


def _personal(data: list[Any], folder_encode: bool) -> tuple[str, str | None]:
    """The first personal namespace of a NAMESPACE answer (RFC 2342), as imapclient's
    `namespace()` reads it."""
    items = [item for item in data if item is not None]
    if not items:
        return "", None
    parsed = parse_response(items)
    personal = parsed[0] if parsed else None
    if not personal:
        return "", None
    prefix, separator = personal[0]
    if isinstance(prefix, bytes):
        prefix = decode_utf7(prefix) if folder_encode else prefix.decode("utf-8", "replace")
    return str(prefix), to_unicode(separator) if separator is not None else None
