"""Progress events: how the engine tells whoever listens what it is doing.

The engine calls `emit(event)`; the CLI decides whether that becomes a tqdm bar, a log line,
a JSON line or nothing. Events are plain frozen dataclasses so any sink can handle them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskStarted:
    """A unit of work begins (e.g. pulling one account); totals may be unknown (None)."""

    task: str
    account: str
    total: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True)
class TaskTotals:
    """The totals of a running task became known or grew (e.g. after a folder's STATUS)."""

    task: str
    account: str
    total: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True)
class TaskAdvanced:
    """`count` more items (and `nbytes` more bytes) of a task are done."""

    task: str
    account: str
    count: int = 0
    nbytes: int = 0


@dataclass(frozen=True)
class TaskFinished:
    """A task ended; `summary` holds its counts and outcome."""

    task: str
    account: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """Something a user should read (a warning, a skipped message), one line."""

    level: str  # "info" | "warning" | "error"
    text: str
    account: str = ""


Event = TaskStarted | TaskTotals | TaskAdvanced | TaskFinished | Notice
Emit = Callable[[Event], None]


def discard(_event: Event) -> None:
    """The sink for callers that do not care about progress."""


class BatchedProgress:
    """TaskAdvanced as items arrive, a few at a time: a bar that moves, with few events."""

    EVERY = 16

    def __init__(self, emit: Emit, task: str, account: str) -> None:
        self.emit, self.task, self.account = emit, task, account
        self.count = self.nbytes = 0

    def advance(self, nbytes: int) -> None:
        self.count += 1
        self.nbytes += nbytes
        if self.count >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        if self.count:
            self.emit(TaskAdvanced(self.task, self.account, self.count, self.nbytes))
            self.count = self.nbytes = 0
