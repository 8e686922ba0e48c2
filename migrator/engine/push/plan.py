"""Which archived folder goes where at the target, and getting target folders ready.

The plan is computed from the archive's folders, the target's layout (LIST, NAMESPACE) and
the config (folder_map, exclude), with the target folders of earlier pushes pinned so a folder
found later (`migrate` while the pull runs) never moves one that already received mail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy import func, select

from migrator.archive import namespaces
from migrator.archive.manifest import AccountRow, FolderRow
from migrator.engine.push.context import PushContext
from migrator.engine.push.rows import (
    FAILED,
    pending_totals,
    pins,
    record_failure,
    target_counts,
)
from migrator.engine.push.twins import twins
from migrator.errors import FolderError
from migrator.folders import (
    FolderMapping,
    FolderPlan,
    FolderRules,
    SourceFolder,
    TargetFolder,
    TargetLayout,
    plan_folders,
)
from migrator.namespace import guess_prefix
from migrator.targets.control import TargetControl

log = logging.getLogger(__name__)


def load_folders(ctx: PushContext) -> list[SourceFolder]:
    """The account's archived folders (remembering their ids) and the pins of earlier pushes."""
    with ctx.manifest.session() as session:  # read only: a dry run writes nothing
        account = session.scalars(select(AccountRow).where(AccountRow.name == ctx.name)).first()
        ctx.account_id = account.id if account is not None else 0
        rows = session.scalars(select(FolderRow).where(FolderRow.account_id == ctx.account_id)
                               .order_by(FolderRow.name)).all()
        ctx.pins = pins(session, ctx.target, ctx.account_id)
    ctx.folder_names = {row.id: row.name for row in rows}
    ctx.roles = {row.name: row.special_use for row in rows if row.special_use}
    prefix = source_prefix(ctx, [(row.name, row.delimiter) for row in rows])
    return [SourceFolder(row.name, row.delimiter, row.special_use, prefix) for row in rows]


def source_prefix(ctx: PushContext, folders: list[tuple[str, str | None]]) -> str:
    """The source's personal namespace prefix as the pull recorded it from NAMESPACE; for an
    archive pulled before that was recorded, or a source without NAMESPACE, a guess."""
    recorded = namespaces.load(ctx.store.root, ctx.name)
    if recorded is not None:
        return recorded.prefix
    delimiter = next((delim for _, delim in folders if delim), None)
    return guess_prefix([name for name, _ in folders], delimiter)


def make_plan(ctx: PushContext) -> FolderPlan:
    """Map the archived folders onto the target (needs `ctx.layout`)."""
    assert ctx.layout is not None
    folders = load_folders(ctx)
    rules = FolderRules(overrides=ctx.endpoint.folder_map, exclude=ctx.endpoint.exclude,
                        pins={**ctx.pins, **ctx.fed})
    ctx.plan = plan_folders(folders, ctx.layout, rules)
    by_name = ctx.plan.as_dict()
    ctx.targets = {folder_id: target for folder_id, name in ctx.folder_names.items()
                   if (target := by_name.get(name)) is not None}
    ctx.copies_upto = 0  # merged folders may have changed: held-back copies computed again
    return ctx.plan


def replan_if_new_folders(ctx: PushContext) -> bool:
    """During `migrate`: plan folders the pull has added since the plan was made."""
    with ctx.manifest.session() as session:
        count = session.scalar(select(func.count(FolderRow.id))
                               .where(FolderRow.account_id == ctx.account_id))
    if count == len(ctx.folder_names):
        return False
    make_plan(ctx)
    return True


def ready_folder(ctx: PushContext, control: TargetControl, folder: str) -> None:
    """Create the target folder (and parents) if missing, and learn its PERMANENTFLAGS."""
    if folder in ctx.selected:
        return
    ensure_folder(ctx, control, folder)
    ctx.selected[folder] = control.select(folder)


def ensure_folder(ctx: PushContext, control: TargetControl, folder: str) -> None:
    """Create the target folder and its missing parents (with its role where the target
    can set one), and remember them in the layout."""
    assert ctx.layout is not None
    role = _roles_to_create(ctx, [folder]).get(folder)
    for path, use in control.missing([folder], ctx.layout, {folder: role} if role else None):
        control.create(path, use)  # parents first: each one's parent is there by now
        _remember_created(ctx, path, use)


def ready_folders(ctx: PushContext, control: TargetControl, folders: Iterable[str]) -> None:
    """`ready_folder` of several folders in two round trips: one CREATE (and SUBSCRIBE) of
    each missing folder and parent, then one SELECT of each folder.

    What did not work there is left as it was: `ready_or_refused` takes that folder alone
    when its messages come up, and says why (or finds it there, or creates it plainly where
    its special use was refused).
    """
    assert ctx.layout is not None
    wanted = [folder for folder in dict.fromkeys(folders)
              if folder not in ctx.selected and folder not in ctx.refused_folders]
    if len(wanted) < 2:  # one folder alone costs the same round trips
        return
    try:
        missing = control.missing(wanted, ctx.layout, _roles_to_create(ctx, wanted))
        created = control.create_all(missing)
        for path, role in missing:
            if created.get(path):
                _remember_created(ctx, path, role)
        selected = control.select_all(wanted)
    except FolderError as exc:
        log.debug("%s: target folders not made ready together (%s); one at a time",
                  ctx.name, exc)
        return
    for folder, found in selected.items():
        if found is not None:
            ctx.selected[folder] = found


def planned_targets(ctx: PushContext) -> list[str]:
    """The target folders the plan sends archived folders to, in plan order."""
    assert ctx.plan is not None
    return [m.target for m in ctx.plan.mappings if m.target is not None]


def _remember_created(ctx: PushContext, path: str, role: str | None) -> None:
    """Count a folder created at the target, and add it to the layout (with its role)."""
    assert ctx.layout is not None
    ctx.count("folders_created")
    ctx.layout = replace(ctx.layout, existing=(*ctx.layout.existing, TargetFolder(path, role)))


def _roles_to_create(ctx: PushContext, folders: Iterable[str]) -> dict[str, str]:
    """Folder -> the special use of the archived folder(s) going there, for folders to
    create; a role goes to one folder only, and not if the target already has a folder
    with it."""
    assert ctx.layout is not None and ctx.plan is not None
    taken = {f.special_use for f in ctx.layout.existing if f.special_use}
    roles: dict[str, str] = {}
    for folder in folders:
        offered = {ctx.roles[m.source] for m in ctx.plan.mappings
                   if m.target == folder and m.source in ctx.roles}
        role = next((role for role in sorted(offered) if role not in taken), None)
        if role is not None:
            roles[folder] = role
            taken.add(role)
    return roles


def ready_or_refused(ctx: PushContext, control: TargetControl, folder: str) -> bool:
    """`ready_folder`, isolated: a folder the target refuses is a failure of that folder
    alone (recorded once per run); the caller leaves its messages pending."""
    if folder in ctx.refused_folders:
        return False
    try:
        ready_folder(ctx, control, folder)
    except FolderError as exc:
        refuse_folder(ctx, folder, str(exc))
        return False
    return True


def refuse_folder(ctx: PushContext, folder: str, reason: str) -> None:
    ctx.refused_folders[folder] = reason
    ctx.count("folders_refused")
    ctx.fail(f"folder {folder}: {reason}; its messages stay to push, the next run tries again")
    with ctx.manifest.session() as session:
        record_failure(session, ctx.run_id, ctx.account_id, folder, "folder", reason)


def create_folder_tree(ctx: PushContext, control: TargetControl) -> None:
    """Every planned target folder exists at the end of a push, empty ones included."""
    make_plan(ctx)  # `migrate`: folders the pull found since the plan was made
    assert ctx.plan is not None and ctx.layout is not None
    layout = ctx.layout
    existing = {_key(f.name, layout) for f in layout.existing}
    wanted = sorted({m.target for m in ctx.plan.mappings if m.target is not None})
    for folder in wanted:
        if _key(folder, layout) in existing or folder.upper() == "INBOX" \
                or folder in ctx.refused_folders:
            continue
        try:
            ensure_folder(ctx, control, folder)
        except FolderError as exc:
            refuse_folder(ctx, folder, str(exc))


def missing_folders(ctx: PushContext) -> set[str]:
    """Planned target folders the target's layout does not list (INBOX always exists)."""
    assert ctx.plan is not None and ctx.layout is not None
    existing = {_key(f.name, ctx.layout) for f in ctx.layout.existing}
    return {m.target for m in ctx.plan.mappings if m.target is not None
            and m.target.upper() != "INBOX" and _key(m.target, ctx.layout) not in existing}


def _key(name: str, layout: TargetLayout) -> str:
    return name.casefold() if layout.case_insensitive else name


@dataclass(frozen=True)
class FolderPreview:
    """One line of `push --dry-run`: a folder, where it goes and what is left to do."""

    mapping: FolderMapping
    messages: int
    to_push: int
    bytes_to_push: int
    done: int
    refused: int
    unknown: int
    merged: int = 0  # also in another source folder of the same target: sent once


def preview(ctx: PushContext) -> list[FolderPreview]:
    """What a push would do, per archived folder, without changing anything anywhere."""
    plan = make_plan(ctx)
    lines = []
    by_name = {name: folder_id for folder_id, name in ctx.folder_names.items()}
    held = _held_back(ctx)
    with ctx.manifest.session() as session:
        for mapping in plan.mappings:
            folder_id = by_name[mapping.source]
            counts = target_counts(session, ctx.target, [folder_id])
            to_push, size = pending_totals(session, ctx.target, [folder_id])
            merged, merged_size = held.get(folder_id, (0, 0))
            to_push, size = to_push - merged, size - merged_size
            if mapping.target is None:
                to_push, size = 0, 0
            lines.append(FolderPreview(mapping, sum(counts.values()), to_push, size,
                                       counts.get("done", 0), counts.get("refused", 0),
                                       counts.get("intent", 0), merged))
    return lines


def _held_back(ctx: PushContext) -> dict[int, tuple[int, int]]:
    """Folder id -> (messages, bytes) not to send because another merged folder's copy
    of the same message is sent (see twins)."""
    copies, messages = twins(ctx)
    held: dict[int, tuple[int, int]] = {}
    for copy_id in copies:
        message = messages[copy_id]
        if message.state in (None, FAILED):
            count, size = held.get(message.folder_id, (0, 0))
            held[message.folder_id] = (count + 1, size + message.size)
    return held
