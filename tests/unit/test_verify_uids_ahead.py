"""UidsAhead (engine/verify/uids_ahead.py): which folders' UIDs are asked for together.

The round trips themselves are tested against Dovecot (tests/integration/
test_migrate_verify.py); here only the grouping, with the control connection replaced by a
recorder of what it was asked."""

from __future__ import annotations

from typing import Any

from migrator.engine.verify.uids_ahead import UidsAhead
from migrator.targets.append_items import Selected


class Control:
    def __init__(self, failing: set[str] = frozenset()) -> None:
        self.asked: list[list[str]] = []
        self.failing = failing

    def uids_of(self, names: list[str]) -> dict[str, Any]:
        self.asked.append(list(names))
        return {name: None if name in self.failing else (Selected(name, 1, 0, None), set())
                for name in names}


def _take_all(ahead: UidsAhead, order: list[str]) -> dict[str, Any]:
    return {name: ahead.take(name) for name in order}


def test_folders_are_asked_for_fifty_at_a_time_in_the_verify_order() -> None:
    order = [f"f{n:03}" for n in range(120)]
    control = Control()
    ahead = UidsAhead(control, order, dict.fromkeys(order, 10))  # type: ignore[arg-type]

    found = _take_all(ahead, order)

    assert [len(group) for group in control.asked] == [50, 50, 20]
    assert [name for group in control.asked for name in group] == order
    assert all(found[name] is not None for name in order)


def test_big_folders_make_smaller_groups() -> None:
    sizes = {"a": 60_000, "b": 30_000, "c": 20_000, "d": 150_000, "e": 5}
    control = Control()
    ahead = UidsAhead(control, sorted(sizes), sizes)  # type: ignore[arg-type]

    _take_all(ahead, sorted(sizes))

    assert control.asked == [["a", "b"], ["c"], ["d"], ["e"]]


def test_folders_not_in_the_order_are_not_asked_for_and_skipped_ones_cost_nothing() -> None:
    control = Control()
    ahead = UidsAhead(control, ["a", "b", "c", "d"], {"b": 99_999})  # type: ignore[arg-type]

    assert ahead.take("Other") is None  # not in the order: the caller asks for it alone
    assert ahead.take("c") is not None  # "a" and "b" were passed over (not compared)
    assert ahead.take("a") is not None  # asked for later, alone: the group started at "c"
    assert control.asked == [["c", "d"], ["a", "b"]]


def test_a_failed_answer_leaves_that_folder_to_be_asked_alone() -> None:
    control = Control(failing={"b"})
    ahead = UidsAhead(control, ["a", "b", "c"], dict.fromkeys("abc", 1))  # type: ignore[arg-type]

    found = _take_all(ahead, ["a", "b", "c"])

    assert control.asked == [["a", "b", "c"]]
    assert found["b"] is None and found["a"] is not None and found["c"] is not None
    assert ahead.take("a") is None  # each answer is handed out once
