"""The migrate no-op probe's target side: would push and verify find nothing to do?

With sqlite3 and one pipelined round trip at the target (NAMESPACE, LIST, and STATUS of every
folder verify recorded), this decides what the full path decides: the same folder plan
(folders.plan_folders on the same inputs), nothing for the push's planner to pick up
(lite_push mirrors its queries), every target folder verify would look at recorded as found
complete, its STATUS unchanged and its archive digest (verify/digest.py, shared) unchanged.
Then the full verify would compare nothing again and report the recorded figures, which are
returned. Anything else is a reason to decline (a str).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from migrator.archive import lite_push, namespaces
from migrator.archive.blobs import BlobStore
from migrator.archive.lite import FolderRecord
from migrator.config import Account, Settings
from migrator.engine.push.candidate import candidate
from migrator.engine.verify.digest import archive_digest
from migrator.folders import (
    ROLES,
    FolderPlan,
    FolderRules,
    SourceFolder,
    TargetFolder,
    TargetLayout,
    imap_name,
    plan_folders,
)
from migrator.namespace import guess_prefix
from migrator.sources.imap_folders import FolderStatus, folder_of, status_of
from migrator.sources.imap_quick import QuickSource
from migrator.sources.imap_wire import Untagged, quote
from migrator.wire.replies import as_text

T = TypeVar("T")


@dataclass
class TargetLook:
    """What one pipelined round trip told of the target."""

    layout: TargetLayout
    statuses: dict[str, FolderStatus] = field(default_factory=dict)  # by Unicode name


@dataclass
class Settled:
    """What push and verify would report: the verify figures of every folder, the plan's
    notes, and how many live messages verify would count."""

    figures: list[dict[str, Any]]
    notes: list[str]
    live: int


def wire_name(name: str) -> str:
    """A Unicode folder name as sent (modified UTF-7; ASCII without '&' is itself)."""
    return name if name.isascii() and "&" not in name else imap_name(name)


def look_at_target(account: Account, token: str | None, recorded: list[str]) -> TargetLook:
    """Sign in, and in one round trip NAMESPACE, LIST and the STATUS of `recorded`, as
    TargetControl.layout and .statuses ask them."""
    assert account.target is not None
    quick = QuickSource(account.target, token)
    try:
        items = b"MESSAGES UIDNEXT UIDVALIDITY" + (
            b" HIGHESTMODSEQ" if "CONDSTORE" in quick.capabilities else b"")
        namespace = "NAMESPACE" in quick.capabilities
        commands = ([b"NAMESPACE"] if namespace else []) + [b'LIST "" "*"'] + [
            b"STATUS " + quote(wire_name(name)) + b" (" + items + b")" for name in recorded]
        answers = quick.ask(commands)
    finally:
        quick.close()
    spoken = answers.pop(0) if namespace else []
    listed = answers.pop(0)
    if spoken is None or listed is None:
        raise ValueError("NAMESPACE or LIST refused")
    prefix, delimiter = _namespace(spoken) if namespace else ("", None)
    existing = []
    for response in listed:
        if (folder := folder_of(response)) is None:
            continue
        delimiter = delimiter or folder.delimiter
        if not folder.selectable:
            continue
        attributes = set(folder.attributes)
        existing.append(TargetFolder(folder.name, next((r for r in ROLES if r in attributes),
                                                       None)))
    kind = "office365" if account.target.kind == "office365" else "imap"
    look = TargetLook(TargetLayout(kind, delimiter or "/", prefix, tuple(existing)))
    for name, responses in zip(recorded, answers, strict=True):
        for response in responses or []:  # refused (None): no such folder
            if (status := status_of(response)) is not None:
                look.statuses[name] = status[1]
    return look


def _namespace(responses: list[Untagged]) -> tuple[str, str | None]:
    """The first personal namespace's (prefix, delimiter), as imapclient reads it."""
    for response in responses:
        if response.kind == "NAMESPACE" and response.data and isinstance(response.data[0], list):
            personal = response.data[0]
            if personal and isinstance(personal[0], list) and len(personal[0]) >= 2:
                prefix, delimiter = personal[0][0], personal[0][1]
                return (as_text(prefix),
                        as_text(delimiter) if isinstance(delimiter, (bytes, int)) else None)
    return "", None


class ArchiveSide:
    """What `settled` asks the archive, each answer kept by its inputs.

    Everything here but the plan is known before the target answers, and the queries and
    digests are most of `settled`'s time (about 60 ms for 5,000 messages): `foresee` works
    them out for the plan the recorded pushes predict while the target is being asked, and
    `settled` then finds them kept whenever its plan agrees, or asks again where it does not.
    The account's lock is held throughout, so the manifest cannot change in between.
    """

    def __init__(self, account: Account, settings: Settings, db: sqlite3.Connection,
                 account_id: int, target: str, known: Mapping[str, FolderRecord]) -> None:
        self.account, self.db, self.target = account, db, target
        self.store = BlobStore(settings.archive.path, settings.archive.compression)
        self.rows = sorted(known.values(), key=lambda row: row.name)
        self.names = {row.id: row.name for row in self.rows}
        self.pins = lite_push.pins(db, target, account_id)
        self.sources, self.rules = self._plan_inputs()
        self._kept: dict[tuple[Any, ...], Any] = {}

    def _plan_inputs(self) -> tuple[list[SourceFolder], FolderRules]:
        """The source folders and rules push/plan.make_plan reads (its load_folders and
        source_prefix): all known before the target answers."""
        assert self.account.target is not None
        recorded = namespaces.load(self.store.root, self.account.name)
        if recorded is not None:
            prefix = recorded.prefix
        else:
            delimiter = next((row.delimiter for row in self.rows if row.delimiter), None)
            prefix = guess_prefix([row.name for row in self.rows], delimiter)
        folders = [SourceFolder(row.name, row.delimiter, row.special_use, prefix)
                   for row in self.rows]
        return folders, FolderRules(overrides=self.account.target.folder_map,
                                    exclude=self.account.target.exclude, pins=self.pins)

    def _kept_or(self, key: tuple[Any, ...], work: Callable[[], T]) -> T:
        if key not in self._kept:
            self._kept[key] = work()
        return cast(T, self._kept[key])

    def anything_to_push(self, targets: Mapping[int, str]) -> bool:
        ids = tuple(sorted(targets))
        return self._kept_or(("to push", ids),
                             lambda: lite_push.anything_to_push(self.db, self.target, ids))

    def done_sources(self, targets: Mapping[int, str]) -> dict[str, set[int]]:
        ids = tuple(sorted(targets))
        return self._kept_or(("done", ids),
                             lambda: lite_push.done_sources(self.db, self.target, ids))

    def live_count(self, targets: Mapping[int, str]) -> int:
        ids = tuple(sorted(targets))
        return self._kept_or(("live", ids), lambda: lite_push.live_count(self.db, ids))

    def digest(self, folder: str, planned: list[int], pushed_from: set[int]) -> str:
        """verify's archive digest of what the archive expects in target `folder`."""
        key = ("digest", folder, tuple(sorted(planned)), tuple(sorted(pushed_from)))

        def work() -> str:
            expected = [candidate(row) for row in lite_push.expected_in(
                self.db, self.target, folder, planned, pushed_from)]
            return archive_digest(self.names, self.store.path, expected)

        return self._kept_or(key, work)

    def compared(self, targets: Mapping[int, str], plan_targets: Iterable[str] = ()
                 ) -> tuple[dict[str, list[int]], dict[str, set[int]], list[str]]:
        """(target folder -> planned source folder ids, target folder -> source folders
        pushed there, every target folder verify would look at)."""
        planned: dict[str, list[int]] = {}
        for folder_id, where in targets.items():
            planned.setdefault(where, []).append(folder_id)
        pushed_from = self.done_sources(targets)
        folders = {f for f in pushed_from if f} | set(planned) | set(plan_targets)
        return planned, pushed_from, sorted(folders)

    def foresee(self, recorded: Iterable[str]) -> None:
        """Work out, ahead of the target's answer, what `settled` will ask for the plan that
        sends each folder where its messages went before (the usual re-run)."""
        targets = {row.id: where for row in self.rows
                   if (where := self.pins.get(row.name)) is not None}
        if not targets or self.anything_to_push(targets):
            return
        planned, pushed_from, folders = self.compared(targets)
        for folder in set(folders) & set(recorded):
            self.digest(folder, planned.get(folder, []), pushed_from.get(folder, set()))
        self.live_count(targets)


def settled(archive: ArchiveSide, look: TargetLook,
            recorded: Mapping[str, tuple[tuple[int | None, ...], str, dict[str, Any]]]
            ) -> Settled | str:
    """The figures verify would report if push and verify would do nothing; else why not."""
    plan = _plan(archive, look.layout)
    by_name = plan.as_dict()
    targets = {row.id: t for row in archive.rows if (t := by_name.get(row.name)) is not None}
    if _missing(plan, look.layout):
        return "a planned target folder does not exist yet (the push would create it)"
    if archive.anything_to_push(targets):
        return "messages wait to be pushed (new, failed or unsettled)"
    planned, pushed_from, folders = archive.compared(targets, plan.targets())
    figures = []
    for folder in folders:
        before, now = recorded.get(folder), look.statuses.get(folder)
        if before is None:
            return f"target folder {folder} is not recorded as verified"
        state = None if now is None else (now.uidvalidity, now.uidnext, now.messages,
                                          now.highestmodseq)
        if state is None or None in state[:3] or tuple(before[0]) != state:
            return f"target folder {folder} changed"
        if archive.digest(folder, planned.get(folder, []),
                          pushed_from.get(folder, set())) != before[1]:
            return f"what the archive expects in {folder} changed"
        figures.append(before[2])
    return Settled(figures, plan.notes(), archive.live_count(targets))


def _plan(archive: ArchiveSide, layout: TargetLayout) -> FolderPlan:
    """push/plan.make_plan on the same inputs (the folders and rules `ArchiveSide` read)."""
    return plan_folders(archive.sources, layout, archive.rules)


def _missing(plan: FolderPlan, layout: TargetLayout) -> bool:
    """push/plan.missing_folders is not empty."""
    def key(name: str) -> str:
        return name.casefold() if layout.case_insensitive else name

    existing = {key(f.name) for f in layout.existing}
    return any(m.target is not None and m.target.upper() != "INBOX"
               and key(m.target) not in existing for m in plan.mappings)
