"""Which archived folder goes where at the target, and getting target folders ready.

The plan is computed from the archive's folders, the target's layout (LIST, NAMESPACE) and
the config (folder_map, exclude), with the target folders of earlier pushes pinned so a folder
found later (`migrate` while the pull runs) never moves one that already received mail.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import func, select

from migrator.archive import namespaces
from migrator.archive.manifest import AccountRow, FolderRow
from migrator.engine.push.context import PushContext
from migrator.engine.push.rows import pending_totals, pins, target_counts
from migrator.folders import (
    FolderMapping,
    FolderPlan,
    FolderRules,
    SourceFolder,
    TargetFolder,
    plan_folders,
)
from migrator.namespace import guess_prefix
from migrator.targets.control import TargetControl


def load_folders(ctx: PushContext) -> list[SourceFolder]:
    """The account's archived folders (remembering their ids) and the pins of earlier pushes."""
    with ctx.manifest.session() as session:  # read only: a dry run writes nothing
        account = session.scalars(select(AccountRow).where(AccountRow.name == ctx.name)).first()
        ctx.account_id = account.id if account is not None else 0
        rows = session.scalars(select(FolderRow).where(FolderRow.account_id == ctx.account_id)
                               .order_by(FolderRow.name)).all()
        ctx.pins = pins(session, ctx.target, ctx.account_id)
    ctx.folder_names = {row.id: row.name for row in rows}
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
    assert ctx.layout is not None
    created = control.ensure(folder, ctx.layout)
    if created:
        ctx.count("folders_created", created)
        known = {f.name for f in ctx.layout.existing}
        parts = folder.split(ctx.layout.delimiter)
        added = tuple(TargetFolder(ctx.layout.delimiter.join(parts[:n]))
                      for n in range(1, len(parts) + 1)
                      if ctx.layout.delimiter.join(parts[:n]) not in known)
        ctx.layout = replace(ctx.layout, existing=ctx.layout.existing + added)
    ctx.selected[folder] = control.select(folder)


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


def preview(ctx: PushContext) -> list[FolderPreview]:
    """What a push would do, per archived folder, without changing anything anywhere."""
    plan = make_plan(ctx)
    lines = []
    by_name = {name: folder_id for folder_id, name in ctx.folder_names.items()}
    with ctx.manifest.session() as session:
        for mapping in plan.mappings:
            folder_id = by_name[mapping.source]
            counts = target_counts(session, ctx.target, [folder_id])
            to_push, size = pending_totals(session, ctx.target, [folder_id])
            if mapping.target is None:
                to_push, size = 0, 0
            lines.append(FolderPreview(mapping, sum(counts.values()), to_push, size,
                                       counts.get("done", 0), counts.get("refused", 0),
                                       counts.get("intent", 0)))
    return lines
