"""Several target folders created in one round trip: each CREATE (with its special use where
asked) and SUBSCRIBE sent before any answer is read.

A push used to create and select each target folder when its first message came up: three
round trips for a new folder (CREATE, SUBSCRIBE, SELECT), one folder after another, while no
message was fed to the connections: 0.15 s a folder at 25 ms, half a minute for a hundred
folders over a long link. A server answers pipelined commands in order (RFC 9051 section
5.5); a parent's CREATE goes before its child's. Only the plain outcome is read here: a
folder whose CREATE was not answered OK is left to the caller's one-at-a-time path, which
says why, creates it plainly where the special use was refused, or finds it there already.

As in `folder_uids.py`, the commands go out with imaplib's `_command` and every answer is
read with `_command_complete`, even after a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient

from migrator.targets.folder_uids import complete


def create_folders(client: IMAPClient, wanted: Sequence[tuple[str, str | None]],
                   special_use: bool) -> dict[str, bool]:
    """(path, special use or None), parents first -> whether its CREATE was answered OK.
    The special use goes with the CREATE only where the server offers CREATE-SPECIAL-USE
    (`special_use`); subscriptions are a courtesy to mail clients, their answers ignored."""
    imap: Any = client._imap
    imap.untagged_responses.clear()
    sent = []
    for path, role in wanted:
        name = client._normalise_folder(path)
        arguments = (name, f"(USE ({role}))") if role and special_use else (name,)
        sent.append((path, imap._command("CREATE", *arguments),
                     imap._command("SUBSCRIBE", name)))
    created = {}
    for path, create, subscribe in sent:
        created[path] = complete(imap, "CREATE", create) == "OK"
        complete(imap, "SUBSCRIBE", subscribe)
        imap.untagged_responses.clear()
    return created
