"""Reporters turn engine events into what a person or a machine reads.

Bars on a TTY, plain log lines in cron, JSON lines with --json, nothing with --quiet:
the choice is made once, from the environment, in `choose_reporter`. Every reporter has a
`close()`, called before the command's outcome or error is printed, so nothing it drew is
left on the screen under them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from migrator.cli.tracking import TaskState, Tracker
from migrator.engine.events import Emit, Event, Notice, TaskFinished, TaskStarted
from migrator.redact import redact

log = logging.getLogger("migrator")


class Reporter(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None: ...


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def summary_text(summary: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in summary.items())


def amount_text(state: TaskState) -> str:
    """`1200 of 3551 messages, 45.2 MB of 130.0 MB` (the 'of' parts once they are known)."""
    total, size = state.total, state.total_bytes
    text = f"{state.done} of {total} messages" if total is not None else f"{state.done} messages"
    text += f", {human_bytes(state.nbytes)}"
    return text + (f" of {human_bytes(size)}" if size is not None else "")


def progress_line(state: TaskState, now: float) -> str:
    """One line for a log: amounts, rate and time left, from the task's own start."""
    elapsed = now - state.started
    parts = [amount_text(state)]
    if elapsed > 0:
        parts.append(f"{human_bytes(state.nbytes / elapsed)}/s")
    left = time_left(state, elapsed)
    parts.append(f"about {human_duration(left)} left" if left is not None else "time left unknown")
    return f"{state.name}: " + ", ".join(parts)


def time_left(state: TaskState, elapsed: float) -> float | None:
    """Bytes predict better than counts (messages differ in size); counts when bytes are unknown."""
    size, total = state.total_bytes, state.total
    if size is not None and state.nbytes > 0:
        return elapsed * (size - state.nbytes) / state.nbytes
    if total is not None and state.done > 0:
        return elapsed * (total - state.done) / state.done
    return None


def end_progress(emit: Emit) -> None:
    """Clear whatever the reporter still shows (a task that failed never said it ended)."""
    close = getattr(emit, "close", None)
    if close is not None:
        close()


class NullReporter:
    """--quiet: nothing at all (errors still reach stderr through the error boundary)."""

    def __call__(self, event: Event) -> None:
        return None

    def close(self) -> None:
        return None


class LineReporter:
    """Unattended runs: a log line per task start and end, per notice, and every `interval`
    seconds one per running task, so a long run in cron or a pipe is not silent for hours."""

    def __init__(self, clock: Callable[[], float], interval: float) -> None:
        self.clock = clock
        self.interval = interval
        self.tracker = Tracker()
        self.next_line = clock() + interval
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            now = self.clock()
            self.tracker.update(event, now)
            if isinstance(event, TaskStarted):
                log.info("%s %s: started", event.task, event.account)
            elif isinstance(event, TaskFinished):
                log.info("%s %s: %s", event.task, event.account, summary_text(event.summary))
            elif isinstance(event, Notice):
                prefix = f"{event.account}: " if event.account else ""
                log.log(logging.getLevelName(event.level.upper()), "%s%s", prefix, event.text)
            if now >= self.next_line and self.tracker.running:
                self.next_line = now + self.interval
                for state in self.tracker.running.values():
                    log.info("%s", progress_line(state, now))

    def close(self) -> None:
        return None


class JsonReporter:
    """--json: notices as JSON lines on stdout, beside the command's own JSON; progress is
    left out (a machine reads the outcome), and stderr is kept for errors."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Notice):
            return
        record = {"event": "notice", "level": event.level, "account": event.account,
                  "text": redact(event.text)}
        with self.lock:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()

    def close(self) -> None:
        return None
