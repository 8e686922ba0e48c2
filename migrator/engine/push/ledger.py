"""What a push worker writes to the manifest, and what that means for the run.

One transaction holds the outcomes that arrived since the last one and the next chunk's
intents; once it is committed, refused and failed messages become failure lines, APPENDUIDs
are kept for `migrate`'s verification, and the run's counts and progress move on. A worker
commits from its own thread and from the one that commits ahead (`ahead.py`), one at a time.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from migrator.engine.push.context import PushContext
from migrator.engine.push.rows import (
    DONE,
    FAILED,
    REFUSED,
    Candidate,
    Outcome,
    record_failure,
    write_intents,
    write_outcomes,
)
from migrator.testhook import kill_point


class Ledger:
    def __init__(self, ctx: PushContext) -> None:
        self.ctx = ctx
        self.candidates: dict[int, Candidate] = {}  # taken from the feeder, not yet settled

    def commit(self, outcomes: list[Outcome], intents: list[tuple[int, str]]) -> None:
        """One transaction: outcomes so far, then the next chunk's intents; then the counts,
        failure lines and UIDs they mean."""
        if not outcomes and not intents:
            return
        with self.ctx.manifest.session() as session:
            write_outcomes(session, self.ctx.target, outcomes)
            for outcome in outcomes:
                if outcome.state in (REFUSED, FAILED):
                    self._report(session, outcome)
            write_intents(session, self.ctx.target, intents)
        if intents:
            kill_point("push-intents")
        if outcomes:
            kill_point("push-recorded")
        self._remember_uids(outcomes)
        self._count(outcomes)

    def _remember_uids(self, outcomes: list[Outcome]) -> None:
        """The UIDs APPENDUID gave (now recorded), for the verification that follows."""
        if self.ctx.appended is None:
            return
        with self.ctx.lock:
            for outcome in outcomes:
                if outcome.state == DONE and outcome.uid is not None:
                    self.ctx.appended[outcome.archive_message_id] = outcome.uid

    def _report(self, session: Session, outcome: Outcome) -> None:
        message = self.candidates[outcome.archive_message_id]
        ref = message.message_id or f"archive message {message.id}"
        folder = self.ctx.folder_names.get(message.folder_id, "?")
        what = "refused by the target" if outcome.state == REFUSED else "failed"
        line = (f"{folder} -> {outcome.target_folder}: {ref} ({message.size} bytes) {what}: "
                f"{outcome.note}")
        self.ctx.fail(line)
        record_failure(session, self.ctx.run_id, self.ctx.account_id, folder, ref,
                       f"{what}: {outcome.note}")
        if outcome.state == FAILED:
            self.ctx.failed_now.add(outcome.archive_message_id)

    def _count(self, outcomes: list[Outcome]) -> None:
        done = [o for o in outcomes if o.state == DONE]
        nbytes = sum(self.candidates[o.archive_message_id].size for o in done)
        self.ctx.count("pushed", len(done))
        self.ctx.count("bytes", nbytes)
        self.ctx.count("refused", sum(o.state == REFUSED for o in outcomes))
        self.ctx.count("failed", sum(o.state == FAILED for o in outcomes))
        self.ctx.advanced(len(outcomes), nbytes)
        for outcome in outcomes:
            self.candidates.pop(outcome.archive_message_id, None)
