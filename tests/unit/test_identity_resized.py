"""A target that changed a message's size (issue 13 item 5): recognised by Message-ID plus the
INTERNALDATE it was appended with and its Date/From/Subject, never by size alone; each target
message answers for one archived message; what nothing can tell is left undecided."""

from __future__ import annotations

from migrator.targets.identity import Identity, Matcher, TargetEntry, Wanted

WHEN = 1_600_000_000
ID = Identity("<m@x>", "date\x1ffrom\x1fsubject")


def wanted(ref: int = 1, when: int | None = WHEN, identity: Identity = ID) -> Wanted:
    return Wanted(ref, identity, frozenset({100}), when)


def test_a_resized_copy_with_the_same_internaldate_and_fingerprint_is_ours() -> None:
    matcher = Matcher([TargetEntry(7, 140, ID, WHEN)])
    assert matcher.claim(wanted()).uid == 7
    assert matcher.claim(wanted(2)) is None  # one target message answers for one only


def test_an_exact_size_is_preferred_over_a_resized_copy() -> None:
    matcher = Matcher([TargetEntry(3, 140, ID, WHEN), TargetEntry(5, 100, ID, WHEN)])
    assert matcher.claim(wanted()).uid == 5
    assert matcher.claim(wanted(2)).uid == 3


def test_size_alone_never_decides() -> None:
    other_date = Matcher([TargetEntry(7, 140, ID, WHEN + 60)])
    assert other_date.claim(wanted()) is None
    assert other_date.undecided(wanted()) is None  # a different date: another message
    other_subject = Identity("<m@x>", "date\x1ffrom\x1fanother subject")
    assert Matcher([TargetEntry(7, 140, other_subject, WHEN)]).claim(wanted()) is None


def test_without_internaldate_a_resized_copy_is_undecided_not_claimed() -> None:
    for entry, asked in ((TargetEntry(7, 140, ID, None), wanted()),
                         (TargetEntry(7, 140, ID, WHEN), wanted(when=None))):
        matcher = Matcher([entry])
        assert matcher.claim(asked) is None
        assert matcher.undecided(asked) is entry
    assert Matcher([TargetEntry(7, 140, ID, None)], claimed={7}).undecided(wanted()) is None
