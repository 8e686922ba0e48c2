"""A message dated ahead of now: targets do not keep such an INTERNALDATE (Dovecot stores
the APPEND's own time for one over two hours ahead), so it is recognised by its identity
and an earlier date at the target; only after every exact date, and never for mail dated
in the past."""

from __future__ import annotations

import time

from migrator.targets.identity import Identity, Matcher, TargetEntry, Wanted

ID = Identity("<m@x>", "")


def test_a_date_ahead_matches_the_earlier_date_the_target_stored() -> None:
    now = int(time.time())
    matcher = Matcher([TargetEntry(4, 100, ID, now)])
    assert matcher.claim(Wanted(1, ID, internaldate=now + 40 * 86400)).uid == 4


def test_an_exact_date_is_preferred() -> None:
    now = int(time.time())
    ahead = now + 40 * 86400
    matcher = Matcher([TargetEntry(4, 100, ID, now), TargetEntry(6, 100, ID, ahead)])
    assert matcher.claim(Wanted(1, ID, internaldate=ahead)).uid == 6


def test_a_past_date_still_needs_its_own_date() -> None:
    now = int(time.time())
    matcher = Matcher([TargetEntry(4, 100, ID, now - 7200)])
    assert matcher.claim(Wanted(1, ID, internaldate=now - 60)) is None


def test_a_later_date_at_the_target_is_another_message() -> None:
    ahead = int(time.time()) + 40 * 86400
    matcher = Matcher([TargetEntry(4, 100, ID, ahead + 60)])
    assert matcher.claim(Wanted(1, ID, internaldate=ahead)) is None


def test_sizes_still_count() -> None:
    now = int(time.time())
    matcher = Matcher([TargetEntry(4, 140, ID, now)])
    assert matcher.claim(Wanted(1, ID, frozenset({100}), now + 40 * 86400)) is None
