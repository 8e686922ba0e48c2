"""A known UIDL listed with another size: the same message, another one, or neither?

POP3 promises that a UIDL names one message for good, so a known UIDL whose content changed
means the server reused it: both copies are kept. But some servers regenerate what they
serve: Courier, asked without UTF-8 mode, wraps a message with UTF-8 headers in a generated
"cannot display Unicode content" message whose MIME boundary changes at every RETR. Taken for
reuse, every run stored another copy of each such message.

So a suspect is fetched (and hashed, not stored) first: content already archived under its
UIDL is the same message. Content not archived is fetched a second time: the same bytes
again are a reused UIDL (the pull then fetches and keeps it); other bytes are *unstable*:
the copy archived before is kept, nothing is added, and a warning names the message.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from migrator.archive.db import Manifest
from migrator.archive.manifest import MessageRow
from migrator.headers import header_block, header_value, message_id
from migrator.sources.pop3 import MaildropEntry, Pop3Error, Pop3Session


@dataclass
class Verdicts:
    """Suspects sorted by what their content turned out to be."""

    same: list[MaildropEntry] = field(default_factory=list)  # archived already
    fetch: list[MaildropEntry] = field(default_factory=list)  # reused UIDL (or RETR refused)
    unstable: list[tuple[MaildropEntry, str]] = field(default_factory=list)  # with a name


def archived_hashes(manifest: Manifest, folder_id: int,
                    uidls: Sequence[str]) -> dict[str, set[str]]:
    """UIDL -> SHA-256 of every copy archived under it."""
    hashes: dict[str, set[str]] = defaultdict(set)
    with manifest.session() as session:
        for uidl, sha in session.execute(
                select(MessageRow.uidl, MessageRow.sha256)
                .where(MessageRow.folder_id == folder_id, MessageRow.uidl.in_(list(uidls)))):
            hashes[str(uidl)].add(str(sha))
    return hashes


def sort_suspects(session: Pop3Session, suspects: Sequence[MaildropEntry],
             archived: Mapping[str, set[str]]) -> Verdicts:
    """RETR each suspect (and again, those with new content); see the module's docstring."""
    verdicts = Verdicts()
    first: dict[int, tuple[str, str]] = {}
    by_number = {item.number: item for item in suspects}
    for number, reply in session.retrieve(by_number):
        item = by_number[number]
        if isinstance(reply, Pop3Error):
            verdicts.fetch.append(item)  # the pull's own RETR records the refusal
        elif (sha := hashlib.sha256(reply).hexdigest()) in archived.get(str(item.uidl), ()):
            verdicts.same.append(item)
        else:
            first[number] = (sha, describe(reply))
    for number, reply in session.retrieve(first):
        item = by_number[number]
        sha, name = first[number]
        if isinstance(reply, Pop3Error) or hashlib.sha256(reply).hexdigest() == sha:
            verdicts.fetch.append(item)
        else:
            verdicts.unstable.append((item, name))
    return verdicts


def describe(data: bytes) -> str:
    """How a user finds the message: its Message-ID, else its Subject."""
    head = header_block(data)
    mid = message_id(head)
    if mid:
        return mid
    subject = header_value(head, "Subject")
    return f"Subject: {subject.strip()[:80]}" if subject else "no Message-ID or Subject"
