"""Merged folders: a message found in several source folders that go to one target folder
is pushed once.

Folders of the same role merge (`Sent` and `Sent Messages` into Sent Items), and so may
folders a `folder_map` sends to one place. A message in both (the same content: the same
SHA-256) must be in the target folder once, not twice. Within one source folder, though,
two identical messages are two messages (the source had both), so the rule is a multiset
union: per target folder and content, the n-th copy in each source folder (in id order) is
the same message. The lowest id of them is the *primary*, pushed as usual; the others are
*copies*: never sent, recorded `done` with the primary's target UID once the primary is
there (`refused` if it was refused). Ids only grow, so a message a running pull adds later
is a copy of one already there, never the other way round.

Recheck and verify use the same rule: a copy is present when its primary is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from migrator.engine.push.context import PushContext
from migrator.engine.push.rows import (
    DONE,
    FAILED,
    INTENT,
    REFUSED,
    Candidate,
    Outcome,
    in_state,
    settle_without_append,
)

ALL_STATES = [None, INTENT, DONE, REFUSED, FAILED]


@dataclass(frozen=True)
class Twin:
    """What decides twins: the row, its source folder, its content, its target folder."""

    id: int
    folder_id: int
    sha256: str
    target: str


def copies_of(rows: Iterable[Twin]) -> dict[int, int]:
    """Copy id -> primary id (see the module's docstring); primaries are not listed."""
    ranks: Counter[tuple[str, str, int]] = Counter()
    primary: dict[tuple[str, str, int], tuple[int, int]] = {}
    copies: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: r.id):
        in_folder = (row.target, row.sha256, row.folder_id)
        key = (row.target, row.sha256, ranks[in_folder])
        ranks[in_folder] += 1
        if key in primary:
            copies[row.id] = primary[key][0]
        else:
            primary[key] = (row.id, row.folder_id)
    return copies


def copies_in_folder(messages: Iterable[Candidate], target: str) -> dict[int, int]:
    """Copy id -> primary id among messages known to be in (or bound for) `target`."""
    return copies_of(Twin(m.id, m.folder_id, m.sha256, target) for m in messages)


def merged_folder_ids(ctx: PushContext) -> list[int]:
    """Source folders whose target folder receives more than one source folder."""
    sources = Counter(ctx.targets.values())
    return [folder_id for folder_id, target in ctx.targets.items() if sources[target] > 1]


def where_it_goes(ctx: PushContext, message: Candidate) -> str:
    """The target folder a message is in (a push row says) or bound for (the plan says)."""
    if message.state in (DONE, INTENT, REFUSED) and message.target_folder:
        return message.target_folder
    return ctx.targets[message.folder_id]


def twins(ctx: PushContext) -> tuple[dict[int, int], dict[int, Candidate]]:
    """(copy id -> primary id, id -> message) for the live messages of merged folders."""
    folder_ids = merged_folder_ids(ctx)
    if not folder_ids:
        return {}, {}
    with ctx.manifest.session() as session:
        messages = in_state(session, ctx.target, folder_ids, ALL_STATES)
    copies = copies_of(Twin(m.id, m.folder_id, m.sha256, where_it_goes(ctx, m))
                       for m in messages)
    return copies, {m.id: m for m in messages}


def held_back(ctx: PushContext, upto: int) -> dict[int, int]:
    """The copies the feeder must not send (computed again once messages above the last
    computation appear, as during `migrate`, or after a re-plan)."""
    if upto > ctx.copies_upto:
        copies, messages = twins(ctx)
        ctx.copies = copies
        ctx.copies_upto = max(upto, max(messages, default=upto))
    return ctx.copies


def settle_copies(ctx: PushContext) -> list[int]:
    """Record every unsettled copy whose primary is settled; return the copies whose
    primary is not there yet (they stay to push: the next round or run settles them)."""
    copies, messages = twins(ctx)
    ctx.copies, ctx.copies_upto = copies, max(messages, default=0)
    outcomes: list[Outcome] = []
    waiting: list[int] = []
    for copy_id, primary_id in sorted(copies.items()):
        copy, primary = messages[copy_id], messages[primary_id]
        if copy.state not in (None, FAILED):
            continue
        note = (f"same message as archive message {primary.id} (merged folders): "
                f"one copy in {primary.target_folder}")
        if primary.state == DONE:
            outcomes.append(Outcome(copy.id, DONE, primary.target_folder,
                                    primary.target_uidvalidity, primary.target_uid, note))
        elif primary.state == REFUSED:
            outcomes.append(Outcome(copy.id, REFUSED, primary.target_folder, note=note))
        else:
            waiting.append(copy.id)
    settle_without_append(ctx, outcomes, "merged")
    return waiting


def mirror(copies: dict[int, int], outcomes: list[Outcome],
           messages: Iterable[Candidate]) -> list[Outcome]:
    """Outcomes for copies: each one as its primary's (recheck checks primaries only)."""
    by_primary = {o.archive_message_id: o for o in outcomes}
    mirrored = []
    for message in messages:
        primary = by_primary.get(copies.get(message.id, -1))
        if primary is not None:
            mirrored.append(Outcome(message.id, primary.state, primary.target_folder,
                                    primary.uidvalidity, primary.uid, primary.note))
    return mirrored
