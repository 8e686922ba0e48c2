"""`verify ACCOUNT`: compare the archive with the target, folder by folder.

Each live archived message is expected in the target folder its push went to (or, never
pushed, where the plan sends it) and is looked for there by Message-ID, fingerprint, or for
messages with neither, content. Never by bytes against Exchange, which re-renders what it
stores; `byte_check` compares bytes (bare LF read as CRLF) on other IMAP servers. What is
left at the target is a duplicate when it looks like an archived message, else an extra
(mail that came some other way: reported, not an error).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.verified import FolderState
from migrator.config import Account
from migrator.engine.events import Emit, TaskAdvanced, TaskFinished, TaskStarted
from migrator.engine.push.context import PushContext
from migrator.engine.push.job import new_context
from migrator.engine.push.plan import make_plan, missing_folders
from migrator.engine.push.reconcile import Finder
from migrator.engine.push.rows import (
    DONE,
    REFUSED,
    Candidate,
    done_sources,
    expected_in,
    live_count,
)
from migrator.engine.push.twins import copies_in_folder
from migrator.engine.verify.listings import Listings
from migrator.engine.verify.uids_ahead import UidsAhead
from migrator.engine.verify.unchanged import (
    AT_RECORDED_UIDS,
    FolderGate,
    planned_sources,
    vouched_for,
)
from migrator.errors import MigratorError
from migrator.folders import FolderMapping
from migrator.targets.control import TargetControl
from migrator.targets.identity import Identity, Matcher, TargetEntry, crlf
from migrator.targets.office365 import byte_comparable


@dataclass
class FolderCheck:
    """One target folder: what the archive expects there and what was found."""

    target: str
    sources: list[str]
    expected: int = 0
    at_target: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    duplicates: int = 0
    extras: int = 0
    merged: int = 0  # copies of a message also in another merged source folder: one expected
    changed: list[str] = field(default_factory=list)  # byte check only
    folder_missing: bool = False  # the target has no such folder (an empty one counts too)
    skipped: bool = False  # unchanged since the last verify found it complete: not compared
    # every message found was at the UID its push recorded (none found elsewhere by
    # identity): kept with the folder's record (not reported), see `_confirmed`
    at_recorded_uids: bool = True

    @property
    def ok(self) -> bool:
        """Refused messages do not spoil it: the target will never take them, the push
        already reported them (PARTIAL), and no later run can change that."""
        return not (self.missing or self.duplicates or self.changed or self.folder_missing)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "sources": self.sources, "expected": self.expected,
                "at_target": self.at_target, "present": self.present,
                "missing": self.missing, "refused": self.refused,
                "duplicates": self.duplicates, "extras": self.extras, "merged": self.merged,
                "changed": self.changed,
                "folder_missing": self.folder_missing, "skipped": self.skipped}

    @classmethod
    def restored(cls, figures: dict[str, Any]) -> FolderCheck:
        """The check of a folder not compared again: the figures of the verify that last
        found it complete."""
        return cls(**{name: value for name, value in figures.items()
                      if name in cls.__dataclass_fields__ and name != "skipped"}, skipped=True)


@dataclass
class TargetReport:
    account: str
    target: str
    byte_check: bool
    folders: list[FolderCheck] = field(default_factory=list)
    skipped: list[FolderMapping] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(folder.ok for folder in self.folders)

    @property
    def refused(self) -> int:
        return sum(len(folder.refused) for folder in self.folders)

    def totals(self) -> dict[str, int]:
        return {"folders": len(self.folders),
                "expected": sum(f.expected for f in self.folders),
                "at_target": sum(f.at_target for f in self.folders),
                "present": sum(f.present for f in self.folders),
                "missing": sum(len(f.missing) for f in self.folders),
                "refused": sum(len(f.refused) for f in self.folders),
                "duplicates": sum(f.duplicates for f in self.folders),
                "extras": sum(f.extras for f in self.folders),
                "merged": sum(f.merged for f in self.folders),
                "changed": sum(len(f.changed) for f in self.folders),
                "missing_folders": sum(f.folder_missing for f in self.folders),
                "folders_skipped": sum(f.skipped for f in self.folders)}

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "target": self.target, "ok": self.ok,
                "byte_check": self.byte_check, **self.totals(),
                "folders": [folder.as_dict() for folder in self.folders],
                "skipped": [m.describe() for m in self.skipped]}


def verify_target(account: Account, manifest: Manifest, store: BlobStore, emit: Emit, *,
                  byte_check: bool = False, full: bool = False,
                  control: TargetControl | None = None,
                  appended: Mapping[int, int] | None = None,
                  listings: Listings | None = None) -> TargetReport:
    """Compare an account's archive with its target; the report says what differs.

    Folders unchanged on both sides since the last verify found them complete are not
    compared again (see `unchanged`); `full` (and `byte_check`) compares every folder.
    `control` (migrate's, after its push) is used and left open.
    `appended`: message id -> UID that APPENDUID gave in the push just run by this process
    (`migrate`); such a message whose recorded UID is still in its folder is present without
    fetching its headers (see `_confirmed`). `listings`: that push's re-check listings of
    its folders, taken instead of listing a folder again where its STATUS proves one current
    (`verify/listings.py`)."""
    ctx = new_context(account, manifest, store, emit, command="verify")
    if byte_check and not byte_comparable(ctx.endpoint):
        raise MigratorError(f"{account.name}: --bytes is not possible against Office 365, "
                            "which re-renders every message it stores; verify without it")
    trusted = {} if byte_check else appended or {}
    if control is not None:
        control.stop = None  # a push's stop event no longer applies
        return _verify(ctx, control, byte_check, full or byte_check, trusted, listings)
    control = TargetControl(ctx.endpoint, account.name, ctx.tokens)
    try:
        return _verify(ctx, control, byte_check, full or byte_check, trusted, listings)
    finally:
        control.close()


def _verify(ctx: PushContext, control: TargetControl, byte_check: bool,
            full: bool, appended: Mapping[int, int],
            listings: Listings | None = None) -> TargetReport:
    ctx.layout = control.layout()
    plan = make_plan(ctx)
    report = TargetReport(ctx.name, ctx.target, byte_check,
                          skipped=[m for m in plan.mappings if m.target is None])
    # A message is expected where its push went (done), else where the plan sends it. One
    # target folder's messages are read at a time, so memory grows with the largest folder,
    # not with the mailbox.
    planned = planned_sources(ctx)
    with ctx.manifest.session() as session:
        pushed_from = done_sources(session, ctx.target, ctx.targets)
        ctx.emit(TaskStarted("verify", ctx.name, live_count(session, ctx.targets)))
    finder = Finder(ctx, control)
    absent = missing_folders(ctx)
    folders = {folder for folder in pushed_from if folder} | set(planned) \
        | {m.target for m in plan.mappings if m.target is not None}  # empty ones too
    gate = FolderGate(ctx, control, folders, full=full)
    vouched = {name: state for name in folders if (state := gate.vouching(name)) is not None}
    # the UIDs of the changed folders that are read UIDs first (see `_confirmed`), asked
    # for many folders at a time, or as the push's re-check listed them if still current
    listed_first = [f for f in sorted(folders) if f not in absent and f in gate.states
                    and gate.target_changed(f) and (appended or f in vouched)]
    known = {} if listings is None or byte_check else {
        f: listing for f in listed_first
        if (listing := listings.current(f, gate.states.get(f))) is not None}
    ahead = UidsAhead(control, listed_first,
                      {name: state.messages or 0 for name, state in gate.states.items()},
                      known)
    for folder in sorted(folders):
        with ctx.manifest.session() as session:
            messages = expected_in(session, ctx.target, folder, planned.get(folder, []),
                                   pushed_from.get(folder, set()))
        figures = gate.unchanged(folder, messages)
        if figures is not None:
            check = FolderCheck.restored(figures)
        else:
            check = _check_folder(ctx, control, finder, folder, messages, byte_check,
                                  appended, ahead, vouched.get(folder))
            check.folder_missing = folder in absent
        if not check.sources:
            check.sources = sorted(m.source for m in plan.mappings if m.target == folder)
        report.folders.append(check)
        ctx.emit(TaskAdvanced("verify", ctx.name, check.expected))
    gate.record((check.target, check.ok,
                 {**check.as_dict(), AT_RECORDED_UIDS: check.at_recorded_uids})
                for check in report.folders if not check.skipped)
    ctx.emit(TaskFinished("verify", ctx.name, {"outcome": "ok" if report.ok else "differences",
                                               **report.totals()}))
    return report


def _describe(ctx: PushContext, message: Candidate) -> str:
    ref = message.message_id or f"archive message {message.id} (no Message-ID)"
    return f"{ref} from {ctx.folder_names.get(message.folder_id, '?')}"


def _check_folder(ctx: PushContext, control: TargetControl, finder: Finder, folder: str,
                  messages: Sequence[Candidate], byte_check: bool,
                  appended: Mapping[int, int], ahead: UidsAhead | None = None,
                  before: FolderState | None = None) -> FolderCheck:
    sources = sorted({ctx.folder_names[m.folder_id] for m in messages})
    check = FolderCheck(folder, sources, expected=len(messages))
    finder.check_sizes = False  # presence by identity; bytes only with byte_check
    known_ids = {m.message_id for m in messages if m.message_id}
    found: dict[int, TargetEntry] = {}
    if appended or before is not None:
        matcher, check.at_target = _confirmed(ctx, finder, folder, messages, appended,
                                              known_ids, found, ahead, before)
    else:
        matcher = _index(ctx, finder, folder, known_ids)
        check.at_target = len(matcher.free)
    validity = ctx.selected[folder].uidvalidity if folder in ctx.selected else None
    for message in messages:  # a recorded UID first, so duplicates are told apart
        if message.id in found:
            continue
        if message.state == DONE and message.target_uidvalidity == validity and message.target_uid:
            entry = matcher.free.get(message.target_uid)
            if entry is not None and _same(finder, message, entry):
                found[message.id] = matcher.take(entry.uid) or entry
    copies = copies_in_folder(messages, folder)  # merged folders: the same message once
    for message in messages:
        if message.id in found:
            continue
        if message.id in copies:  # present (or missing) as its primary is
            check.merged += 1
            continue
        if message.state == REFUSED:
            check.refused.append(_describe(ctx, message))
            continue
        entry = finder.find(folder, matcher, message)
        if entry is None:
            check.missing.append(_describe(ctx, message))
        else:
            found[message.id] = entry
            check.at_recorded_uids = False
    check.present = len(found)
    check.expected -= check.merged
    _leftovers(finder, check, matcher, messages)
    if byte_check:
        check.changed = _compare_bytes(ctx, control, folder, messages, found)
    return check


def _index(ctx: PushContext, finder: Finder, folder: str, known_ids: set[str]) -> Matcher:
    existing = {f.name for f in ctx.layout.existing} if ctx.layout else set()
    if folder not in existing:
        return Matcher([])
    ctx.selected[folder], entries = finder.control.index(folder)
    return Matcher(entries, known_ids=known_ids)


def _confirmed(ctx: PushContext, finder: Finder, folder: str, messages: Sequence[Candidate],
               appended: Mapping[int, int], known_ids: set[str],
               found: dict[int, TargetEntry], ahead: UidsAhead | None = None,
               before: FolderState | None = None) -> tuple[Matcher, int]:
    """Present without a header fetch: a message whose recorded UID, within the folder's
    UIDVALIDITY, is still listed by UID SEARCH (a UID names one message for good) and was
    either given by APPENDUID to this process for it, or is vouched for by `before`, the
    state of the last verify that found every message at its recorded UID
    (`FolderGate.vouching`): a changed folder's re-run fetches the headers of what came
    since, not of the whole folder. Not for a message without a Message-ID: its identity is
    a fingerprint of its blob, which is read again, so a blob damaged since still shows as
    the message missing. Only the folder's other UIDs are fetched and matched, so what is
    missing, duplicated or extra is found as before. The index and the folder's message
    count are returned."""
    existing = {f.name for f in ctx.layout.existing} if ctx.layout else set()
    if folder not in existing:
        return Matcher([]), 0
    listed = ahead.take(folder) if ahead is not None else None
    selected, uids = listed if listed is not None else finder.control.uids(folder)
    ctx.selected[folder] = selected
    at_target = len(uids)
    for message in messages:
        uid = message.target_uid
        vouched = before is not None and bool(message.message_id) \
            and vouched_for(before, message.target_uidvalidity, uid)
        if (uid is not None and message.state == DONE
                and (appended.get(message.id) == uid or vouched)
                and message.target_uidvalidity == selected.uidvalidity and uid in uids):
            uids.discard(uid)
            found[message.id] = TargetEntry(uid, message.size,
                                            Identity(message.message_id or "", ""))
    entries = finder.control.index(folder, only=uids)[1] if uids else []
    return Matcher(entries, known_ids=known_ids), at_target


def _same(finder: Finder, message: Candidate, entry: TargetEntry) -> bool:
    """Is the message at the UID a push recorded still this one? Its identity must agree,
    not its INTERNALDATE: the recorded UID already tells apart messages sharing a
    Message-ID, and a server may keep another date than the one appended (Dovecot stores
    the APPEND's own time for one over two hours ahead)."""
    wanted = replace(finder.wanted(message), internaldate=None)
    probe = Matcher([entry])
    return probe.claim(wanted) is not None or wanted.identity.anonymous


def _leftovers(finder: Finder, check: FolderCheck, matcher: Matcher,
               messages: Sequence[Candidate]) -> None:
    known_ids = Counter(m.message_id for m in messages if m.message_id)
    for entry in matcher.remaining():
        if entry.identity.message_id and entry.identity.message_id in known_ids:
            check.duplicates += 1
        else:
            check.extras += 1


def _compare_bytes(ctx: PushContext, control: TargetControl, folder: str,
                   messages: Sequence[Candidate], found: dict[int, TargetEntry]) -> list[str]:
    by_uid = {entry.uid: message for message in messages
              if (entry := found.get(message.id)) is not None}
    changed = []
    pairs = [(uid, found[message.id].size) for uid, message in sorted(by_uid.items())]
    for uid, body in control.bodies(folder, pairs):
        message = by_uid[uid]
        if crlf(body) != crlf(ctx.store.read(message.sha256)):
            changed.append(_describe(ctx, message))
    return changed
