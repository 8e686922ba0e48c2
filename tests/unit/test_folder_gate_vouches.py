"""FolderGate.vouches: when the push's re-check may pass over a folder without listing its
UIDs (only the archive side changed since a verify that confirmed every recorded UID)."""

from __future__ import annotations

import pytest

from migrator.archive.verified import FolderState, Verified
from migrator.engine.push.candidate import Candidate
from migrator.engine.verify.unchanged import FolderGate

THEN = FolderState(uidvalidity=7, uidnext=100, messages=60)


def gate(*, flag: object = True, now: FolderState | None = THEN, full: bool = False,
         recorded: bool = True) -> FolderGate:
    """The gate's recorded and current state for INBOX, without a manifest or a server."""
    found = FolderGate.__new__(FolderGate)
    report = {} if flag is None else {"at_recorded_uids": flag}
    found.recorded = {"INBOX": Verified(THEN, "digest", report)} if recorded else {}
    found.states = {"INBOX": now} if now is not None else {}
    found.full = full
    return found


def done(uid: int | None, validity: int | None = 7) -> Candidate:
    return Candidate(uid or 0, 1, "ab" * 32, 10, None, (), "<m@x>", "done", "INBOX",
                     validity, uid)


def test_done_rows_below_the_recorded_uidnext_are_vouched_for():
    assert gate().vouches("INBOX", [done(1), done(50), done(99)])
    assert gate().vouches("INBOX", [])


@pytest.mark.parametrize("rows", [
    [done(1), done(100)],  # appended since that verify
    [done(1), done(None)],  # no UID recorded
    [done(1), done(5, validity=8)],  # recorded under another UIDVALIDITY
], ids=["uid at uidnext", "no uid", "other uidvalidity"])
def test_a_row_that_verify_cannot_have_confirmed_is_not(rows):
    assert not gate().vouches("INBOX", rows)


@pytest.mark.parametrize("kind", ["flag off", "flag unknown", "target changed", "no status",
                                  "full", "not recorded"])
def test_without_a_vouching_record_and_the_same_status_nothing_is(kind):
    found = {"flag off": lambda: gate(flag=False),
             "flag unknown": lambda: gate(flag=None),  # recorded before the flag existed
             "target changed": lambda: gate(now=FolderState(7, 100, 59)),  # an expunge
             "no status": lambda: gate(now=None),
             "full": lambda: gate(full=True),
             "not recorded": lambda: gate(recorded=False)}[kind]()
    assert not found.vouches("INBOX", [done(1)])
