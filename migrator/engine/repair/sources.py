"""Fetch damaged blobs again from the source: IMAP by UIDVALIDITY/UID, else by Message-ID;
POP3 by UIDL. Read-only at the source (EXAMINE, BODY.PEEK[], no DELE, no QUIT needed).

Whatever comes back is offered to the `Restorer`, which keeps it only when it hashes to the
damaged blob's name, so a message changed at the source (or a reused UIDL) can never replace
archived content with something else.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from migrator.config import Account
from migrator.engine.repair.damage import Copy, Damaged, Restorer
from migrator.errors import ConnectionLost
from migrator.sources import pop3
from migrator.sources.imap import Folder, ImapSource
from migrator.sources.imap_wire import CommandFailed, quote
from migrator.wire import imapconn

log = logging.getLogger(__name__)

FETCH_BATCH = 200  # UIDs per FETCH: bodies arrive one by one, the batch bounds the command


def from_imap(account: Account, damaged: list[Damaged], restorer: Restorer) -> dict[str, str]:
    """Fetch again by folder; returns why a folder could not be read (folder -> reason)."""
    by_folder: dict[Copy, list[Copy]] = defaultdict(list)
    for item in damaged:
        for copy in item.copies:
            by_folder[_folder_key(copy)].append(copy)
    client = imapconn.connect(account.source, account.name,
                              imapconn.tokens_for(account.source, account.name))
    source = ImapSource(client)
    problems: dict[str, str] = {}
    try:
        for key, copies in sorted(by_folder.items(), key=lambda kv: kv[0].folder):
            try:
                _folder(source, key, copies, restorer)
            except CommandFailed as exc:
                problems[key.folder] = f"the source refused folder {key.folder}: {exc.text}"
    except ConnectionLost as exc:  # what was repaired so far is durable
        raise ConnectionLost(f"{account.name}: source connection lost during repair "
                             f"({exc}); {len(restorer.restored)} blob(s) "
                             "repaired so far are kept: run repair again") from None
    finally:
        source.close()
    return problems


def _folder_key(copy: Copy) -> Copy:
    return Copy(copy.folder, copy.raw_folder, copy.delimiter, None, None, None, None)


def _folder(source: ImapSource, key: Copy, copies: list[Copy], restorer: Restorer) -> None:
    status = source.examine(Folder(key.folder, key.raw_folder, key.delimiter, ()))
    by_uid = sorted({c.uid for c in copies if c.uid is not None
                     and c.uidvalidity == status.uidvalidity})
    _fetch(source, by_uid, restorer)
    if not restorer.missing():
        return
    by_id: set[int] = set()
    for copy in copies:  # UIDVALIDITY changed or UID gone: the Message-ID may still be there
        if copy.message_id and not copy.message_id.isascii():
            continue
        if copy.message_id:
            tag = source.wire.send(b"UID SEARCH HEADER Message-ID " + quote(copy.message_id))
            by_id |= source.read_search(tag)
    _fetch(source, sorted(by_id - set(by_uid)), restorer)


def _fetch(source: ImapSource, uids: list[int], restorer: Restorer) -> None:
    for start in range(0, len(uids), FETCH_BATCH):
        tag = source.send_fetch(uids[start:start + FETCH_BATCH])
        for message in source.read_fetch(tag):
            restorer.offer(message.data)


def from_pop3(account: Account, damaged: list[Damaged], restorer: Restorer) -> dict[str, str]:
    """RETR by UIDL; the session ends without QUIT, so the maildrop is left as it was."""
    wanted = {copy.uidl for item in damaged for copy in item.copies if copy.uidl}
    session = pop3.connect(account.source, account.name)
    try:
        uidls = session.uidls()
        if uidls is None:
            return {"INBOX": "the POP3 server has no UIDL: messages cannot be found again"}
        numbers = [number for number, uidl in sorted(uidls.items()) if uidl in wanted]
        _retrieve(session.retrieve(numbers), restorer)
    finally:
        session.close()
    return {}


def _retrieve(replies: Iterable[tuple[int, bytes | pop3.Pop3Error]],
              restorer: Restorer) -> None:
    for number, reply in replies:
        if isinstance(reply, bytes):
            restorer.offer(reply)
        else:
            log.info("RETR %d refused: %s", number, reply)
