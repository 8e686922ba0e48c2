"""Target state is re-checked, not assumed: a pushed message gone from the target is sent again.

A `done` push row says "the target had this message once". Somebody may have deleted it since,
or the server may have answered OK to the APPEND and never kept it. Before pushing (and again
after, for the folders this run wrote to) each target folder holding done rows is compared
with them, cheaply: one SELECT (UIDVALIDITY, EXISTS) and one UID SEARCH per folder, those of
many folders sent at once (`verify/uids_ahead.py`). A done
row whose UID is no longer listed goes back to `failed` with the reason in `last_error`, so
the push sends it again. A folder unchanged on both sides since verify last found it
complete (see verify/unchanged.py) is not checked at all, nor one whose target side alone is
unchanged when that verify vouched for every done row's UID (`FolderGate.vouches`: only
messages pulled since changed the archive side). Rows whose UID cannot be checked
(the folder's UIDVALIDITY changed, or the server gave no APPENDUID) are looked for by
identity (Message-ID, fingerprint) in the folder's index: found, the row learns the new UID;
not found, it is sent again. The index is
read only when such rows exist and, for rows without a UID, only when the folder holds fewer
messages than done rows, so an unchanged folder costs two commands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from migrator.engine.events import Notice
from migrator.engine.push.context import PushContext
from migrator.engine.push.reconcile import Finder
from migrator.engine.push.rows import (
    DONE,
    FAILED,
    Candidate,
    Outcome,
    done_counts,
    done_sources,
    expected_in,
    in_state,
    write_outcomes,
)
from migrator.engine.push.twins import copies_in_folder, mirror
from migrator.engine.verify.uids_ahead import UidsAhead
from migrator.engine.verify.unchanged import planned_sources, recheck_gate
from migrator.errors import FolderError
from migrator.targets.append_items import Selected
from migrator.targets.control import TargetControl

log = logging.getLogger(__name__)

REMAPPED_NOTE = "found again by identity after the target folder's UIDVALIDITY changed"


def recheck(ctx: PushContext, control: TargetControl,
            folders: Iterable[str] | None = None) -> list[Candidate]:
    """Compare done rows (of `folders`, default all) with the target; return those gone,
    which are now `failed` and so pushed again."""
    wanted = set(folders) if folders is not None else None
    if wanted is not None and not wanted:
        return []
    with ctx.manifest.session() as session:
        sources = done_sources(session, ctx.target, ctx.targets)
    folders = [folder for folder in sorted(sources) if folder
               and (wanted is None or folder in wanted) and folder not in ctx.refused_folders]
    gate = recheck_gate(ctx, control, folders)
    planned = planned_sources(ctx)
    finder = Finder(ctx, control)
    changed = [f for f in folders if gate is None or gate.target_changed(f)]
    sizes: dict[str, int] = {}
    if changed:  # a no-op re-check (every folder unchanged) reads no counts
        with ctx.manifest.session() as session:
            sizes = done_counts(session, ctx.target)
    ahead = UidsAhead(control, changed, sizes)
    gone: list[Candidate] = []
    for folder in folders:  # one folder's rows in memory at once
        if gate is not None:  # unchanged since verify found it complete: nothing to re-check
            with ctx.manifest.session() as session:
                expected = expected_in(session, ctx.target, folder, planned.get(folder, []),
                                       sources[folder])
            if gate.unchanged(folder, expected) is not None:
                continue
        folder_ids = sources[folder]
        with ctx.manifest.session() as session:
            messages = in_state(session, ctx.target, folder_ids, [DONE], target_folder=folder)
        if gate is not None and gate.vouches(folder, messages):
            continue  # only the archive side changed (a message pulled since): none gone
        outcomes = _check_folder(ctx, control, finder, folder, messages, ahead)
        with ctx.manifest.session() as session:
            write_outcomes(session, ctx.target, outcomes)
        lost = {o.archive_message_id for o in outcomes if o.state == FAILED}
        gone.extend(m for m in messages if m.id in lost)
    if gone:
        ctx.count("resent_gone", len(gone))
        ctx.emit(Notice("warning", f"{len(gone)} message(s) recorded as pushed are not at the "
                        "target (deleted there, or not kept): sending them again", ctx.name))
    return gone


def _check_folder(ctx: PushContext, control: TargetControl, finder: Finder, folder: str,
                  messages: Sequence[Candidate], ahead: UidsAhead | None = None
                  ) -> list[Outcome]:
    """Primaries are checked; a copy (merged folders, see twins) fares as its primary, so
    a folder holding fewer messages than done rows is not taken for one losing mail."""
    copies = copies_in_folder(messages, folder)
    primaries = [m for m in messages if m.id not in copies]
    outcomes = _check_primaries(ctx, control, finder, folder, primaries, ahead)
    return outcomes + mirror(copies, outcomes, messages)


def _check_primaries(ctx: PushContext, control: TargetControl, finder: Finder, folder: str,
                     messages: Sequence[Candidate], ahead: UidsAhead | None = None
                     ) -> list[Outcome]:
    try:
        selected, uids = _listing(ctx, control, folder, ahead)
    except FolderError as exc:  # listed but not selectable now: nothing can be concluded
        log.info("%s: cannot check %s: %s", ctx.name, folder, exc)
        return []
    if selected is None:
        return [Outcome(m.id, FAILED, folder, note=f"target folder {folder} is gone: sent "
                        "again") for m in messages]
    outcomes, unsure = [], []
    for message in messages:
        if message.target_uid and message.target_uidvalidity == selected.uidvalidity:
            if message.target_uid not in uids:
                outcomes.append(Outcome(message.id, FAILED, folder, note=(
                    f"UID {message.target_uid} gone from target folder {folder}: sent again")))
        elif message.target_uid or len(uids) < len(messages):
            unsure.append(message)  # UIDVALIDITY changed, or no UID and messages missing
    if unsure:
        outcomes.extend(_by_identity(finder, folder, selected, unsure))
    return outcomes


def _listing(ctx: PushContext, control: TargetControl, folder: str,
             ahead: UidsAhead | None = None) -> tuple[Selected | None, set[int]]:
    """(SELECT state, UIDs) of a target folder (asked for with others by `ahead`, else
    alone), kept for a verification that follows (`ctx.listings`); (None, empty) when the
    target has no such folder (it will be created again)."""
    assert ctx.layout is not None
    listed = ahead.take(folder) if ahead is not None else None
    if listed is None:
        try:
            listed = control.uids(folder)
        except FolderError as exc:
            if folder in {f.name for f in ctx.layout.existing}:
                raise
            log.info("%s: %s", ctx.name, exc)
            return None, set()
    ctx.selected[folder] = listed[0]
    if ctx.listings is not None:
        ctx.listings.keep(folder, listed)
    return listed


def _by_identity(finder: Finder, folder: str, selected: Selected,
                 messages: Sequence[Candidate]) -> list[Outcome]:
    matcher = finder.refresh(folder)
    outcomes = []
    for message in messages:
        entry = finder.find(folder, matcher, message)
        if entry is not None:
            if (entry.uid, selected.uidvalidity) != (message.target_uid,
                                                     message.target_uidvalidity):
                outcomes.append(Outcome(message.id, DONE, folder, selected.uidvalidity,
                                        entry.uid, REMAPPED_NOTE))
            continue
        outcomes.append(Outcome(message.id, FAILED, folder, note=(
            f"not found in target folder {folder} (UIDVALIDITY {selected.uidvalidity}): "
            "sent again")))
    finder.ctx.matchers.pop(folder, None)  # the push indexes afresh if it needs to
    return outcomes


def not_kept(ctx: PushContext, gone: Sequence[Candidate]) -> None:
    """Messages the target accepted and lost again, twice in this run: reported, and left
    `failed` so that the next run sends them again."""
    for message in gone:
        ctx.failed_now.add(message.id)
        ctx.fail(f"{message.target_folder}: "
                 f"{message.message_id or f'archive message {message.id}'}: the target "
                 "answered OK to the APPEND but does not keep the message; run push again")
    ctx.count("failed", len(gone))
