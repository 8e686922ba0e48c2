"""Which target folders a re-run must compare again: those where something changed since
verify last found them complete.

Each folder verify finds complete is recorded (migrator/archive/verified.py) with the STATUS
the target gave for it just before the comparison, and a digest of what the archive expected
there. A later verify (and push's re-check of done rows) asks every folder's STATUS in one
pipelined round trip and compares again only where either side differs. Why this is sound:
with UIDVALIDITY and UIDNEXT unchanged nothing was appended (nor the folder re-created);
with MESSAGES unchanged too nothing was expunged; so the folder holds exactly the messages
found complete. HIGHESTMODSEQ, where the target offers CONDSTORE, changes with any flag
change too. On the archive side the digest covers every expected message (its id, blob,
Message-ID, push row state and target UID) and, for messages without a Message-ID (found by
a fingerprint of their blob), the blob file's size, mtime and inode, so a new or re-pushed
message, a push row gone back to `failed`, or such a blob damaged or missing, all change it.
The STATUS is taken before the comparison, so a change made during it shows next time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from migrator.archive import verified as records
from migrator.archive.verified import FolderState, Verified
from migrator.engine.push.context import PushContext
from migrator.engine.push.rows import Candidate
from migrator.engine.verify.digest import archive_digest
from migrator.errors import MigratorError
from migrator.targets.control import TargetControl

log = logging.getLogger(__name__)

# kept in a verified folder's report: every message was found at the UID its push recorded
AT_RECORDED_UIDS = "at_recorded_uids"


def planned_sources(ctx: PushContext) -> dict[str, list[int]]:
    """Target folder -> the source folders the plan sends there."""
    planned: dict[str, list[int]] = defaultdict(list)
    for folder_id, where in ctx.targets.items():
        planned[where].append(folder_id)
    return planned


class FolderGate:
    """What one verify (or re-check) knows of each folder: its recorded state, its STATUS
    now, and the digest of what the archive expects there."""

    def __init__(self, ctx: PushContext, control: TargetControl, folders: Iterable[str], *,
                 full: bool = False, status_all: bool = True) -> None:
        self.ctx = ctx
        with ctx.manifest.session() as session:
            self.recorded = records.load(session, ctx.target)
        self.full = full
        self.digests: dict[str, str] = {}  # filled folder by folder, as each is read
        existing = {f.name for f in ctx.layout.existing} if ctx.layout else set()
        wanted = sorted(f for f in set(folders) if f in existing
                        and (status_all or f in self.recorded))
        self.states = self._statuses(control, wanted)
        self.skipped: list[str] = []

    def _statuses(self, control: TargetControl,
                  names: Sequence[str]) -> dict[str, FolderState]:
        try:
            found = control.statuses(names)
        except MigratorError as exc:  # compare everything: nothing lost but time
            log.info("%s: target STATUS failed (%s): comparing every folder", self.ctx.name, exc)
            return {}
        return {name: FolderState(s.uidvalidity, s.uidnext, s.messages, s.highestmodseq)
                for name, s in found.items() if s is not None}

    def unchanged(self, folder: str, expected: Sequence[Candidate]) -> dict[str, Any] | None:
        """The figures of the last verify of `folder` if neither side changed since (the
        folder is then not compared again), else None. `expected`: the archived messages
        expected there now (one folder's, so memory stays with the largest folder)."""
        self.digests[folder] = archive_digest(self.ctx.folder_names, self.ctx.store.path,
                                              expected)
        before = self.recorded.get(folder)
        if before is None or self.target_changed(folder) \
                or before.archive_digest != self.digests[folder]:
            return None
        self.skipped.append(folder)
        return before.report

    def vouching(self, folder: str) -> FolderState | None:
        """The state recorded by the last verify of `folder` if that verify found every
        message at the UID its push recorded (`AT_RECORDED_UIDS`), else None (and always
        None for `full`). A row's UID that `vouched_for` that state was recorded before that
        verify and found there by it (APPENDUIDs given since are above its UIDNEXT; a row
        found again by identity clears the flag): under the same UIDVALIDITY a UID names one
        message for good, so while the UID is listed the message is there."""
        before = self.recorded.get(folder)
        if self.full or before is None or not before.report.get(AT_RECORDED_UIDS):
            return None
        return before.state

    def vouches(self, folder: str, done: Sequence[Candidate]) -> bool:
        """Are the `done` rows of `folder` still at the target without listing its UIDs?
        Yes when its STATUS is the one recorded (nothing appended or expunged since) and
        the record vouches for each row's UID (`vouching`)."""
        state = self.vouching(folder)
        return state is not None and not self.target_changed(folder) and all(
            vouched_for(state, row.target_uidvalidity, row.target_uid) for row in done)

    def target_changed(self, folder: str) -> bool:
        """Will `folder` be compared whatever the archive expects there? (`full`, or its
        STATUS now is not the one its last verify recorded.)"""
        before, now = self.recorded.get(folder), self.states.get(folder)
        return (self.full or before is None or now is None or not now.complete
                or before.state != now)

    def record(self, results: Iterable[tuple[str, bool, dict[str, Any]]]) -> None:
        """Keep what this verify found: (folder, complete?, figures). A folder found wanting,
        or whose STATUS was not had, is forgotten, so the next verify compares it again."""
        keep, drop = [], []
        for folder, complete, report in results:
            state = self.states.get(folder)
            if complete and state is not None and state.complete and folder in self.digests:
                keep.append((folder, Verified(state, self.digests[folder], report)))
            else:
                drop.append(folder)
        with self.ctx.manifest.session() as session:
            records.forget(session, self.ctx.target, drop)
            for folder, verified in keep:
                records.save(session, self.ctx.target, folder, verified)


def vouched_for(state: FolderState, uidvalidity: int | None, uid: int | None) -> bool:
    """Was a row's target UID (within `uidvalidity`) confirmed by the verify that recorded
    `state`? (See `FolderGate.vouching`.)"""
    return uid is not None and uidvalidity == state.uidvalidity and uid < (state.uidnext or 0)


def recheck_gate(ctx: PushContext, control: TargetControl,
                 folders: Sequence[str]) -> FolderGate | None:
    """A gate for push's re-check of `folders` (None when verify never recorded one): a
    folder it finds unchanged on both sides since verify found it complete may be passed
    over (every message expected there was there then, and the folder holds the same
    messages now). STATUS is asked only of recorded folders."""
    if not folders:
        return None
    with ctx.manifest.session() as session:
        if not records.load(session, ctx.target):
            return None
    return FolderGate(ctx, control, folders, status_all=False)
