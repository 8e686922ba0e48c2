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
    Known,
    diff_incremental,
    diff_listing,
    make_batches,
    needs_full_listing,
)
from migrator.engine.imap.records import (
    finish_folder,
    has_stale_rows,
    known_messages,
    mark_back,
    mark_gone,
    resolve_failures,
    update_flags,
)
from migrator.sources.imap import CommandFailed, Folder, ImapSource, ListedMessage
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
    """Ask the server (read-only) what this folder needs; write nothing.

    What the plan will need goes out with the EXAMINE, guessed from the last sync (`Asked`):
    one round trip where it took two (a first pull: EXAMINE, then the listing) or four (a
    changed folder on a delta pass: EXAMINE, UID SEARCH, CHANGEDSINCE, then the new UIDs'
    sizes). A second one follows only where EXAMINE proves the guess wrong (a new
    UIDVALIDITY) or an unknown UID is not among the changes (a failure retried).
    """
    known, stale = _known(ctx, state.folder_id, state.uidvalidity)
    incremental = (source.condstore and state.uidvalidity is not None
                   and state.highestmodseq is not None and not stale)
    asked = Asked(source, folder, state.highestmodseq if incremental else None, sizes)
    status = asked.status
    if status.uidvalidity != state.uidvalidity:
        known, stale = _known(ctx, state.folder_id, status.uidvalidity)
    remap = stale or (state.uidvalidity is not None and state.uidvalidity != status.uidvalidity)
    if not status.messages:
        delta, server = diff_listing({}, known), set()
    elif needs_full_listing(state, status, source.condstore, remap):
        listing = asked.listing()
        delta, server = diff_listing(listing, known), set(listing)
    else:
        server, changed = asked.changes()
        unknown = server - known.keys()
        new = {uid: listed for uid, listed in changed.items() if uid in unknown}
        if rest := unknown - new.keys():
            new.update(source.listing(uid_set(rest), sizes=sizes))
        delta = diff_incremental(server, {uid: m.flags for uid, m in changed.items()}, new,
                                 known)
    job = FolderJob(folder=folder, folder_id=state.folder_id, status=status, remap=remap,
                    had_failures=bool(state.failed_uids))
    batches = [Batch(job, listed) for listed in big_first(make_batches(delta.new))]
    return FolderPullPlan(job, delta, server, batches)


def _known(ctx: PullContext, folder_id: int, uidvalidity: int | None
           ) -> tuple[dict[int, Known], bool]:
    """The manifest's messages of the folder under `uidvalidity`, and whether live rows
    under another one wait for a re-map."""
    with ctx.manifest.session() as session:
        return (known_messages(session, folder_id, uidvalidity),
                has_stale_rows(session, folder_id, uidvalidity))


class Asked:
    """EXAMINE and, sent with it before any answer is read, what the plan will need: the
    listing of every message, or (`modseq`, the last sync's HIGHESTMODSEQ) every UID and
    the listing of the messages changed since (new ones among them). An answer refused is
    raised where it is used, so a refusal of one EXAMINE shows is not needed (an empty
    folder, a guess gone wrong) fails nothing."""

    def __init__(self, source: ImapSource, folder: Folder, modseq: int | None,
                 sizes: bool) -> None:
        self.source, self.sizes, self.incremental = source, sizes, modseq is not None
        examine = source.send_examine(folder)
        tags = ((source.send_search(None), source.send_changes(modseq, sizes))
                if modseq is not None else (source.send_listing(b"1:*", sizes),))
        try:
            self.status = source.read_examine(folder, examine)
        except CommandFailed:
            source.drain(tags)
            raise
        self.refused: CommandFailed | None = None
        self._listing: dict[int, ListedMessage] | None = None
        self._changes: tuple[set[int], dict[int, ListedMessage]] | None = None
        try:
            if modseq is not None:
                self._changes = source.read_changes(tags[0], tags[-1], sizes)
            else:
                self._listing = source.read_listing(tags[0])
        except CommandFailed as exc:  # read to its end: the connection is clean
            self.refused = exc

    def listing(self) -> dict[int, ListedMessage]:
        """Every message's UID, size and flags: as asked with EXAMINE, or asked now."""
        if self.incremental:
            return self.source.listing(sizes=self.sizes)
        if self.refused is not None:
            raise self.refused
        assert self._listing is not None
        return self._listing

    def changes(self) -> tuple[set[int], dict[int, ListedMessage]]:
        """Every UID, and the listing of the messages changed since the last sync."""
        assert self.incremental
        if self.refused is not None:
            raise self.refused
        assert self._changes is not None
        return self._changes


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
        mark_back(session, job.folder_id, uidvalidity, delta.back)
        if delta.back:
            resolve_failures(session, ctx.account_id, job.folder.name, delta.back)
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
              back=len(delta.back), folders_synced=1)
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
    if delta.back:
        parts.append(f"{len(delta.back)} marked gone but listed again")
    if plan.job.remap:
        parts.append("UIDVALIDITY changed (re-map)")
    return f"{plan.job.folder.name}: " + ", ".join(parts)

