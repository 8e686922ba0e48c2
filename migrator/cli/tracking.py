"""What each running task has done and how much it has to do: the numbers every reporter shows.

The engine reports totals as it learns them. A plain push knows its total from the start; the
push of a `migrate` does not, because the pull running beside it keeps adding mail, so the
engine's push totals grow (1037 -> 1521 -> 3551) and can fall behind what was already sent.
Here the push of a migrate takes its total from the pull's plan instead: what was waiting in
the archive when the push started, plus what the pull still had to fetch then. That total is
known as soon as the pull has planned, and does not move with every batch the pull commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.engine.events import Event, TaskAdvanced, TaskFinished, TaskStarted, TaskTotals

Key = tuple[str, str]


@dataclass
class TaskState:
    """One task (e.g. `push alice`): counts and bytes done, and what there is to do."""

    task: str
    account: str
    started: float  # clock reading when the task started
    own_total: int | None = None
    own_bytes: int | None = None
    done: int = 0
    nbytes: int = 0
    fed_by: TaskState | None = None  # the pull feeding this push, in a migrate
    waiting: int = 0  # fed: messages in the archive, not yet pulled, when the push started
    waiting_bytes: int = 0

    @property
    def name(self) -> str:
        return f"{self.task} {self.account}".strip()

    @property
    def total(self) -> int | None:
        """Messages to do in all; never below what is done, so a bar never loses its total."""
        total = self.own_total
        if self.fed_by is not None:
            pulled = self.fed_by.total
            total = None if pulled is None else self.waiting + pulled
        return None if total is None else max(total, self.done)

    @property
    def total_bytes(self) -> int | None:
        size = self.own_bytes
        if self.fed_by is not None:
            pulled = self.fed_by.total_bytes
            size = None if pulled is None else self.waiting_bytes + pulled
        return None if size is None else max(size, self.nbytes)


class Tracker:
    """Folds engine events into TaskStates; `update` returns the state an event touched."""

    def __init__(self) -> None:
        self.running: dict[Key, TaskState] = {}

    def update(self, event: Event, now: float) -> TaskState | None:
        """Apply one event; a finished task is returned one last time, then forgotten."""
        if not isinstance(event, TaskStarted | TaskTotals | TaskAdvanced | TaskFinished):
            return None
        key = (event.task, event.account)
        if isinstance(event, TaskStarted):
            self.running[key] = self._started(event, now)
            return self.running[key]
        state = self.running.get(key)
        if state is None:
            return None
        if isinstance(event, TaskTotals):
            state.own_total, state.own_bytes = event.total, event.total_bytes
        elif isinstance(event, TaskAdvanced):
            state.done += event.count
            state.nbytes += event.nbytes
        else:
            del self.running[key]
        return state

    def _started(self, event: TaskStarted, now: float) -> TaskState:
        """A pull and a push of one account running together are a migrate's: link them,
        whichever of the two started first (their threads race)."""
        state = TaskState(event.task, event.account, now, event.total, event.total_bytes)
        if event.task == "push" and ("pull", event.account) in self.running:
            link(state, self.running["pull", event.account])
        elif event.task == "pull" and ("push", event.account) in self.running:
            link(self.running["push", event.account], state)
        return state


def link(push: TaskState, pull: TaskState) -> None:
    """Base the push's total on the pull's plan from now on.

    What the push counted so far includes what the pull had committed by then; the rest of
    the pull's plan is still to come on top of what was waiting before.
    """
    push.fed_by = pull
    push.waiting = max((push.own_total or 0) - pull.done, 0)
    push.waiting_bytes = max((push.own_bytes or 0) - pull.nbytes, 0)
