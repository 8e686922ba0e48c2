"""The UIDs of many target folders, asked for a group of folders at a time.

Verify (after a push) and the push's re-check list the UIDs of every folder they look at,
one folder after another. Asked folder by folder that is two round trips per folder (SELECT,
UID SEARCH); here, when the first folder of a group is reached, the whole group is asked in
one round trip (`TargetControl.uids_of`), in the order the caller goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migrator.targets.append_items import Selected
from migrator.targets.control import TargetControl


class UidsAhead:
    """`take(folder)`: that folder's (SELECT state, UIDs) if it was asked for with its group,
    else None (not in `order`, or its answer failed: the caller asks for it alone, which
    says why). A group holds at most GROUP_FOLDERS folders and, by `sizes` (the messages
    expected in each), about GROUP_UIDS UIDs, so memory stays bounded whatever the mailbox."""

    GROUP_FOLDERS = 50
    GROUP_UIDS = 100_000

    def __init__(self, control: TargetControl, order: Sequence[str],
                 sizes: Mapping[str, int],
                 known: Mapping[str, tuple[Selected, set[int]]] | None = None) -> None:
        """`known`: listings had already (`verify/listings.py`), given out, never asked."""
        self.control = control
        self.had: dict[str, tuple[Selected, set[int]]] = dict(known or {})
        self.waiting = [name for name in order if name not in self.had]
        self.sizes = sizes

    def take(self, folder: str) -> tuple[Selected, set[int]] | None:
        if folder in self.waiting:
            self._ask_from(self.waiting.index(folder))
        return self.had.pop(folder, None)

    def _ask_from(self, start: int) -> None:
        group: list[str] = []
        total = 0
        for name in self.waiting[start:]:
            count = self.sizes.get(name, 0)
            if group and (len(group) == self.GROUP_FOLDERS or total + count > self.GROUP_UIDS):
                break
            group.append(name)
            total += count
        del self.waiting[start:start + len(group)]
        self.had.update((name, found) for name, found in self.control.uids_of(group).items()
                        if found is not None)
