"""Settle APPENDs whose outcome is unknown, and find what the target already has.

An intent without an outcome (connection lost or process killed between the APPEND and its
reply) is looked for in its target folder before it may be sent again: by Message-ID (and,
on servers that keep bytes, size), else by a Date/From/Subject fingerprint, else by content
(not on Exchange, which re-renders messages). Each target message answers for at most one
archived message, and never for one that a recorded push already accounts for.

The same search keeps push from duplicating mail that reached the target some other way
(an earlier run with another manifest, another tool): it runs for a folder only when the
target holds more messages there than our recorded pushes explain.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC

from migrator.engine.push.context import SERVER_GRACE, PushContext
from migrator.engine.push.message import delivery_date, parse_date
from migrator.engine.push.rows import (
    DONE,
    FAILED,
    INTENT,
    Candidate,
    Outcome,
    done_uids,
    in_state,
    latest_intent,
    message_ids,
    settle_without_append,
    write_outcomes,
)
from migrator.errors import FolderError
from migrator.targets.append_items import Selected
from migrator.targets.control import TargetControl
from migrator.targets.identity import (
    Identity,
    Matcher,
    TargetEntry,
    Wanted,
    crlf,
    crlf_size,
    identity_of,
)
from migrator.targets.office365 import byte_comparable, store_flagged_after_append

log = logging.getLogger(__name__)

QUIET_CHECKS = 10  # how often a folder's message count is re-read until it stops changing
QUIET_WAIT = 0.5
FOUND_NOTE = "found at the target after an APPEND with unknown outcome"
RESEND_NOTE = "APPEND outcome unknown and not found at the target: sent again"
UNDECIDED_NOTE = "APPEND outcome unknown; a target message differs only by size: not sent"


class Finder:
    """Looks for archived messages in target folders (index fetched once, refreshed on need)."""

    def __init__(self, ctx: PushContext, control: TargetControl) -> None:
        self.ctx = ctx
        self.control = control
        self.keeps_bytes = byte_comparable(ctx.endpoint)  # content checks possible
        self.check_sizes = self.keeps_bytes  # presence also needs an equal RFC822.SIZE

    def refresh(self, folder: str, settle: bool = False) -> Matcher:
        """A fresh index of `folder`, less the UIDs recorded pushes already account for.

        With `settle`, the index is taken once the folder's message count stops changing:
        a server may still be storing what a lost connection (or a killed process) had
        sent, and a message looked for too early would be sent twice.
        """
        existing = {f.name for f in self.ctx.layout.existing} if self.ctx.layout else set()
        entries: list[TargetEntry] = []
        if folder in existing or folder in self.ctx.selected:
            try:
                selected, entries = self._index(folder, settle)
                self.ctx.selected[folder] = selected
            except FolderError as exc:  # a folder that went away holds nothing
                log.info("%s: %s", self.ctx.name, exc)
        validity = self.ctx.selected[folder].uidvalidity if folder in self.ctx.selected else None
        with self.ctx.manifest.session() as session:
            claimed = done_uids(session, self.ctx.target, folder, validity)
            known = message_ids(session, [folder_id for folder_id, target
                                          in self.ctx.targets.items() if target == folder])
        matcher = Matcher(entries, claimed, known)
        self.ctx.matchers[folder] = matcher
        return matcher

    def _index(self, folder: str, settle: bool) -> tuple[Selected, list[TargetEntry]]:
        before = self.control.select(folder).exists if settle else None
        for _ in range(QUIET_CHECKS):
            if before is not None:
                self.ctx.stop.wait(QUIET_WAIT)
            selected, entries = self.control.index(folder)
            if before is None or selected.exists == before:
                break
            before = selected.exists
        return selected, entries

    def wanted(self, message: Candidate, data: bytes | None = None) -> Wanted:
        """What to look for; reads the blob only when the Message-ID is missing or sizes
        must be compared."""
        date = parse_date(message.internaldate)  # the INTERNALDATE it was appended with
        if message.message_id and not self.check_sizes:
            return Wanted(message.id, Identity(message.message_id, ""),
                          internaldate=int(date.timestamp()) if date is not None else None)
        data = data if data is not None else self.ctx.store.read(message.sha256)
        identity = Identity(message.message_id or "", identity_of(data).fingerprint)
        sizes = frozenset({len(data), crlf_size(data)}) if self.check_sizes else frozenset()
        date = date or delivery_date(data)
        return Wanted(message.id, identity, sizes,
                      int(date.timestamp()) if date is not None else None)

    def find(self, folder: str, matcher: Matcher, message: Candidate) -> TargetEntry | None:
        wanted = self.wanted(message)
        entry = matcher.claim(wanted)
        if entry is None and wanted.identity.anonymous and self.keeps_bytes:
            entry = self._same_content(folder, matcher, message)
        return entry

    def _same_content(self, folder: str, matcher: Matcher,
                      message: Candidate) -> TargetEntry | None:
        """No Message-ID, Date, From or Subject: compare the bytes themselves."""
        data = self.ctx.store.read(message.sha256)
        candidates = matcher.candidates(frozenset({len(data), crlf_size(data)}))
        if not candidates:
            return None
        expected = crlf(data)
        for uid, body in self.control.bodies(folder, [(c.uid, c.size) for c in candidates]):
            if crlf(body) == expected:
                return matcher.take(uid)
        return None

    def undecided(self, matcher: Matcher, message: Candidate) -> TargetEntry | None:
        """A target message that may be this one but only differs by size (see Matcher)."""
        return matcher.undecided(self.wanted(message)) if self.check_sizes else None

    def might_have(self, matcher: Matcher, message: Candidate) -> bool:
        """Cheap test before reading a blob: is anything at the target a candidate at all?"""
        if message.message_id:
            return bool(matcher.by_id.get(message.message_id))
        return bool(matcher.free)


def reconcile(ctx: PushContext, control: TargetControl) -> int:
    """Settle every intent of this target: done if found there, else failed (sent again).

    Returns how many were found at the target.
    """
    with ctx.manifest.session() as session:
        intents = in_state(session, ctx.target, ctx.folder_names, [INTENT], live_only=False)
    intents = [m for m in intents if m.id not in ctx.failed_now]  # reported undecided
    if not intents:
        return 0
    _grace(ctx)
    finder = Finder(ctx, control)
    by_folder: dict[str, list[Candidate]] = defaultdict(list)
    for message in intents:
        by_folder[message.target_folder or ""].append(message)
    found = 0
    for folder, messages in sorted(by_folder.items()):
        outcomes = _settle_folder(ctx, finder, control, folder, messages)
        with ctx.manifest.session() as session:
            write_outcomes(session, ctx.target, outcomes)
        for outcome in outcomes:
            if outcome.state == DONE:
                found += 1
                _count_found(ctx, outcome.archive_message_id)
    if found or len(intents) > found:
        log.info("%s: %d APPEND(s) with unknown outcome: %d found at the target, %d to send "
                 "again", ctx.name, len(intents), found, len(intents) - found)
    return found


def _count_found(ctx: PushContext, archive_message_id: int) -> None:
    """Sent in this run (its reply lost): pushed; left by an earlier run: already there."""
    size = ctx.sent_now.pop(archive_message_id, None)
    if size is None:
        ctx.count("already_there")
        return
    ctx.count("pushed")
    ctx.count("bytes", size)
    ctx.advanced(1, size)


def _grace(ctx: PushContext) -> None:
    """Give the server time to finish what lost connections (or a killed run) had sent."""
    with ctx.manifest.session() as session:
        last = latest_intent(session, ctx.target)
    written = last.replace(tzinfo=UTC).timestamp() if last else 0.0
    wait = max(ctx.settled_after(), written + SERVER_GRACE) - time.time()
    if wait > 0:
        log.info("%s: waiting %.1fs for the target to store what lost connections sent",
                 ctx.name, wait)
        ctx.stop.wait(wait)


def _settle_folder(ctx: PushContext, finder: Finder, control: TargetControl, folder: str,
                   messages: Sequence[Candidate]) -> list[Outcome]:
    matcher = finder.refresh(folder, settle=True)
    validity = ctx.selected[folder].uidvalidity if folder in ctx.selected else None
    outcomes, flagged = [], []
    for message in messages:
        entry = finder.find(folder, matcher, message) if folder else None
        if entry is None and folder and (doubt := finder.undecided(matcher, message)):
            outcomes.append(_undecided(ctx, folder, message, doubt))
            continue
        if entry is None:
            outcomes.append(Outcome(message.id, FAILED, folder or None, note=RESEND_NOTE))
            continue
        outcomes.append(Outcome(message.id, DONE, folder, validity, entry.uid, FOUND_NOTE))
        if "\\Flagged" in message.flags and store_flagged_after_append(ctx.endpoint):
            flagged.append(entry.uid)
    if flagged:  # the STORE after the APPEND may never have happened
        control.add_flags(folder, flagged, ["\\Flagged"])
    return outcomes


def _undecided(ctx: PushContext, folder: str, message: Candidate,
               doubt: TargetEntry) -> Outcome:
    """Prefer a report to a possible duplicate: the intent stays, named on stderr."""
    ctx.failed_now.add(message.id)
    ctx.count("undecided")
    ctx.fail(f"{folder}: {message.message_id}: APPEND outcome unknown; target UID {doubt.uid} "
             "has this Message-ID but another size and no INTERNALDATE to tell: not sent "
             "again, to avoid a duplicate (if that UID is another message, delete it there "
             "and run push again)")
    return Outcome(message.id, INTENT, folder, note=UNDECIDED_NOTE)


def already_there(ctx: PushContext, finder: Finder, folder: str,
                  messages: Sequence[Candidate]) -> list[Candidate]:
    """Record as done what the target folder already holds; return the rest to send."""
    fresh = [m for m in messages if m.state is None]
    matcher = ctx.matchers.get(folder)
    if not fresh or matcher is None or not matcher.free:
        return list(messages)
    validity = ctx.selected[folder].uidvalidity if folder in ctx.selected else None
    found: list[Outcome] = []
    rest = []
    for message in messages:
        entry = None
        if message.state is None and finder.might_have(matcher, message):
            entry = finder.find(folder, matcher, message)
        if entry is None:
            rest.append(message)
        else:
            found.append(Outcome(message.id, DONE, folder, validity, entry.uid,
                                 "already at the target before this push"))
    settle_without_append(ctx, found, "already_there")
    return rest


def needs_index(ctx: PushContext, folder: str) -> bool:
    """Does the target folder hold messages our recorded pushes do not explain?"""
    selected = ctx.selected.get(folder)
    if selected is None or selected.exists == 0 or folder in ctx.matchers:
        return False
    with ctx.manifest.session() as session:
        ours = done_uids(session, ctx.target, folder, selected.uidvalidity)
    return selected.exists > len(ours)
