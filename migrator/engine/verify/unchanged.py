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

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from migrator.archive import verified as records
from migrator.archive.verified import FolderState, Verified
from migrator.engine.push.context import PushContext
from migrator.engine.push.rows import DONE, REFUSED, Candidate, in_state
from migrator.errors import MigratorError
from migrator.targets.control import TargetControl

log = logging.getLogger(__name__)


def expected_by_folder(ctx: PushContext,
                       messages: Iterable[Candidate]) -> dict[str, list[Candidate]]:
    """Target folder -> the archived messages expected there: where a done push put each,
    else where the plan sends it."""
    by_folder: dict[str, list[Candidate]] = defaultdict(list)
    for message in messages:
        where = message.target_folder if message.state == DONE else None
        by_folder[where or ctx.targets[message.folder_id]].append(message)
    return by_folder


def archive_digest(ctx: PushContext, messages: Sequence[Candidate]) -> str:
    digest = hashlib.sha256()
    for m in sorted(messages, key=lambda m: m.id):
        digest.update(f"{m.id}\t{ctx.folder_names.get(m.folder_id)}\t{m.sha256}\t"
                      f"{m.message_id}\t{m.state}\t{m.target_folder}\t"
                      f"{m.target_uidvalidity}\t{m.target_uid}\n".encode())
        if not m.message_id:  # found by a fingerprint of its blob: the blob file counts
            digest.update(_blob_signature(ctx, m.sha256).encode())
    return digest.hexdigest()


def _blob_signature(ctx: PushContext, sha256: str) -> str:
    try:
        stat = os.stat(ctx.store.path(sha256))
    except OSError:
        return "missing\n"
    return f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ino}\n"


class FolderGate:
    """What one verify (or re-check) knows of each folder: its recorded state, its STATUS
    now, and the digest of what the archive expects there."""

    def __init__(self, ctx: PushContext, control: TargetControl,
                 folders: dict[str, list[Candidate]], *, full: bool = False,
                 status_all: bool = True) -> None:
        self.ctx = ctx
        with ctx.manifest.session() as session:
            self.recorded = records.load(session, ctx.target)
        self.full = full
        self.digests = {folder: archive_digest(ctx, messages)
                        for folder, messages in folders.items()}
        existing = {f.name for f in ctx.layout.existing} if ctx.layout else set()
        wanted = sorted(f for f in folders if f in existing
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

    def unchanged(self, folder: str) -> dict[str, Any] | None:
        """The figures of the last verify of `folder` if neither side changed since (the
        folder is then not compared again), else None."""
        if self.full:
            return None
        before, now = self.recorded.get(folder), self.states.get(folder)
        if before is None or now is None or not now.complete:
            return None
        if before.state != now or before.archive_digest != self.digests.get(folder):
            return None
        self.skipped.append(folder)
        return before.report

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


def unchanged_since_verified(ctx: PushContext, control: TargetControl,
                             folders: Iterable[str]) -> list[str]:
    """Of `folders`, those push's re-check may pass over: unchanged on both sides since
    verify last found them complete (every message expected there was there then, and the
    folder holds the same messages now). STATUS is asked only of recorded folders."""
    names = set(folders)
    with ctx.manifest.session() as session:
        if not names or not records.load(session, ctx.target):
            return []
        messages = in_state(session, ctx.target, ctx.targets,
                            [None, "intent", DONE, REFUSED, "failed"])
    expected = expected_by_folder(ctx, messages)
    gate = FolderGate(ctx, control, {f: expected.get(f, []) for f in names}, status_all=False)
    return [folder for folder in sorted(names) if gate.unchanged(folder) is not None]
