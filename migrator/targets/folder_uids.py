"""The UIDs of several folders in one round trip: SELECT and UID SEARCH ALL of each, all sent
before any answer is read.

A migrate's verification lists the UIDs of every folder its push wrote to (to confirm what
APPENDUID said without fetching anything). One folder after another, that is two round trips
per folder: 0.5 s for five folders at 25 ms, seconds for a mailbox of a hundred folders
over a long link. A server answers pipelined commands in order (RFC 9051 section 5.5), and a
SELECT that fails leaves no folder selected, so the UID SEARCH behind it fails too rather than
listing another folder; its answer is thrown away all the same.

imaplib runs one command at a time: as `folder_status.py` does for STATUS, the commands are
sent with its `_command` and each answer read with `_command_complete`, every one of them
even after a failure, so the connection is left with nothing unread.
"""

from __future__ import annotations

import imaplib
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient
from imapclient.response_parser import parse_message_list

SelectInfo = dict[bytes, Any]  # imapclient's view of a SELECT's answer


def folder_uids(client: IMAPClient, names: Sequence[str],
                search: bool = True) -> dict[str, tuple[SelectInfo, set[int]] | None]:
    """Folder -> (its SELECT answer, its UIDs), or None where either command failed.
    `search=False`: the SELECTs alone (a push learning each folder's PERMANENTFLAGS before
    it appends there), every set of UIDs empty."""
    imap: Any = client._imap
    imap.untagged_responses.clear()  # answers to earlier commands, read and used already
    sent = []
    for name in names:
        select = imap._command("SELECT", client._normalise_folder(name))
        imap.state = "SELECTED"  # imaplib's own check; the server answers in order
        sent.append((name, select, imap._command("UID", "SEARCH", "ALL") if search else None))
    found: dict[str, tuple[SelectInfo, set[int]] | None] = {}
    selected = False
    for name, select, listing in sent:
        selected = complete(imap, "SELECT", select) == "OK"
        info = client._process_select_response(imap.untagged_responses) if selected else {}
        imap.untagged_responses.clear()
        uids: set[int] = set()
        listed = True
        if listing is not None:
            listed = complete(imap, "SEARCH", listing) == "OK"
            _, data = imap._untagged_response("OK", [None], "SEARCH")
            imap.untagged_responses.clear()
            uids = set(parse_message_list(data))
        found[name] = (info, uids) if selected and listed else None
    imap.state = "SELECTED" if selected else "AUTH"  # what the last SELECT left
    return found


def complete(imap: Any, name: str, tag: Any) -> str:
    """The tagged answer's kind; a BAD (read, then raised by imaplib) is just "BAD" here."""
    try:
        kind, _ = imap._command_complete(name, tag)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error:
        return "BAD"
    return str(kind)
