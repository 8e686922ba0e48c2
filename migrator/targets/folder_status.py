"""STATUS of many target folders in one round trip: how a re-run tells which folders changed.

imapclient sends one command and waits for its answer; here every STATUS is sent first and
the answers read after, in order (a server answers pipelined commands in the order sent), so
ten folders cost one round trip, not ten. HIGHESTMODSEQ is asked only where the target
offers CONDSTORE (Exchange does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.response_parser import parse_response


@dataclass(frozen=True)
class TargetFolderStatus:
    uidvalidity: int | None
    uidnext: int | None
    messages: int | None
    highestmodseq: int | None = None


def folder_statuses(client: IMAPClient,
                    names: Sequence[str]) -> dict[str, TargetFolderStatus | None]:
    """Folder -> its STATUS, or None where the server refuses it (NO: no such folder)."""
    items = "(MESSAGES UIDNEXT UIDVALIDITY" + (
        " HIGHESTMODSEQ" if client.has_capability("CONDSTORE") else "") + ")"
    imap: Any = client._imap  # imaplib underneath: send all, then read the answers
    tags = [(name, imap._command("STATUS", client._normalise_folder(name), items))
            for name in names]
    found: dict[str, TargetFolderStatus | None] = {}
    for name, tag in tags:
        kind, _ = imap._command_complete("STATUS", tag)
        _, untagged = imap._untagged_response(kind, [None], "STATUS")
        answers = [answer for answer in untagged if answer is not None]
        found[name] = _parse(answers[-1]) if kind == "OK" and answers else None
    return found


def _parse(answer: Any) -> TargetFolderStatus:
    parsed = parse_response([answer])
    values = parsed[-1] if parsed else ()
    pairs = {_key(values[i]): values[i + 1] for i in range(0, len(values) - 1, 2)}

    def number(key: str) -> int | None:
        value = pairs.get(key)
        return value if isinstance(value, int) else None

    return TargetFolderStatus(number("UIDVALIDITY"), number("UIDNEXT"), number("MESSAGES"),
                              number("HIGHESTMODSEQ"))


def _key(value: Any) -> str:
    return (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).upper()
