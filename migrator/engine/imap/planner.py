"""Plan one folder's sync: EXAMINE, ask the server what changed, record flag changes and
gone messages, and cut the new messages into batches.

The folder's sync state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) is taken from EXAMINE *before*
anything is listed, and recorded only once every batch is committed: whatever changes during
the run is seen by the next one, and a run killed half-way leaves the old state, so the next
run lists the folder again and fetches only what the manifest still lacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from migrator.engine.imap.context import PullContext
from migrator.engine.imap.jobs import Batch, FolderJob
from migrator.engine.imap.plan import (
    ALONE_BYTES,
    FolderDelta,
    FolderState,
    diff_incremental,
    diff_listing,
    make_batches,
    needs_full_listing,
)
from migrator.engine.imap.records import (
    finish_folder,
    has_stale_rows,
    known_messages,
    mark_gone,
    resolve_failures,
    update_flags,
)
from migrator.sources.imap import Folder, ImapSource, ListedMessage
from migrator.testhook import kill_point
from migrator.wire.sequence_set import uid_set

log = logging.getLogger(__name__)


@dataclass
class FolderPullPlan:
    """What pulling one folder takes: its new messages in batches, flag changes, gone UIDs.

    Not `folders.FolderPlan`, which says where each folder goes at a push target.
    """

    job: FolderJob
    delta: FolderDelta
    server_uids: set[int] = field(default_factory=set)
    batches: list[Batch] = field(default_factory=list)

    @property
    def new_bytes(self) -> int:
        return sum(message.size for message in self.delta.new)


def plan_folder(ctx: PullContext, source: ImapSource, folder: Folder,
                state: FolderState, sizes: bool = True) -> FolderPullPlan:
    """Ask the server (read-only) what this folder needs; write nothing."""
    status = source.examine(folder)
    with ctx.manifest.session() as session:
        known = known_messages(session, state.folder_id, status.uidvalidity)
        stale = has_stale_rows(session, state.folder_id, status.uidvalidity)
    remap = stale or (state.uidvalidity is not None and state.uidvalidity != status.uidvalidity)
    if not status.messages:
        delta, server = diff_listing({}, known), set()
    elif needs_full_listing(state, status, source.condstore, remap):
        listing = source.listing(sizes=sizes)
        delta, server = diff_listing(listing, known), set(listing)
    else:
        assert state.highestmodseq is not None
        server = source.uids()
        changed = source.changed_flags(state.highestmodseq)
        unknown = server - known.keys()
        new = source.listing(uid_set(unknown), sizes=sizes) if unknown else {}
        delta = diff_incremental(server, changed, new, known)
    job = FolderJob(folder=folder, folder_id=state.folder_id, status=status, remap=remap,
                    had_failures=bool(state.failed_uids))
    batches = [Batch(job, listed) for listed in big_first(make_batches(delta.new))]
    return FolderPullPlan(job, delta, server, batches)


def big_first(batches: list[list[ListedMessage]]) -> list[list[ListedMessage]]:
    """A folder's batches of one very large message first, the rest in UID order: the big
    ones are then not the last to arrive, so a `migrate` does not end with one connection
    uploading a 30 MB message while the others are done (the sync state is recorded after
    the folder's last batch, whatever their order)."""
    return sorted(batches, key=lambda batch: not (len(batch) == 1
                                                  and batch[0].size >= ALONE_BYTES))


def apply_plan(ctx: PullContext, plan: FolderPullPlan, state: FolderState) -> None:
    """Record what needs no fetching (flag changes, gone messages) and, when nothing is to be
    fetched, the folder's new sync state; one transaction."""
    job, delta = plan.job, plan.delta
    uidvalidity = job.status.uidvalidity
    gone_now = 0
    with ctx.db_lock, ctx.manifest.session() as session:
        update_flags(session, job.folder_id, uidvalidity, delta.flags)
        mark_gone(session, job.folder_id, uidvalidity, delta.gone)
        if job.remap:  # failures named UIDs of the old UIDVALIDITY: they are re-listed now
            resolve_failures(session, ctx.account_id, job.folder.name)
        elif state.failed_uids - plan.server_uids:
            resolve_failures(session, ctx.account_id, job.folder.name,
                             state.failed_uids - plan.server_uids)
        if not plan.batches:
            gone_now = finish_folder(session, job.folder_id, job.status, close_remap=job.remap)
    job.add_batches(len(plan.batches))
    ctx.jobs.append(job)
    kill_point("planned")
    ctx.count(flags_updated=len(delta.flags), gone=len(delta.gone) + gone_now,
              folders_synced=1)
    if job.remap:
        ctx.notice(f"{job.folder.name}: UIDVALIDITY changed to {uidvalidity}: re-mapping "
                   "the folder by content", "info")


def describe(plan: FolderPullPlan) -> str:
    """One line for --dry-run."""
    delta = plan.delta
    parts = [f"would fetch {len(delta.new)} message(s), {plan.new_bytes} bytes"]
    if delta.flags:
        parts.append(f"{len(delta.flags)} flag change(s)")
    if delta.gone:
        parts.append(f"{len(delta.gone)} gone")
    if plan.job.remap:
        parts.append("UIDVALIDITY changed (re-map)")
    return f"{plan.job.folder.name}: " + ", ".join(parts)

