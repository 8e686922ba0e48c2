"""Reporters turn engine events into what a person or a machine reads.

Bars on a TTY, plain log lines in cron, JSON lines with --json, nothing with --quiet:
the choice is made once, from the environment, in `choose_reporter`.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, TextIO

from tqdm import tqdm

from migrator.engine.events import (
    Event,
    Notice,
    TaskAdvanced,
    TaskFinished,
    TaskStarted,
    TaskTotals,
)

log = logging.getLogger("migrator")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def summary_text(summary: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in summary.items())


class NullReporter:
    """--quiet: nothing at all (errors still reach stderr through the error boundary)."""

    def __call__(self, event: Event) -> None:
        return None


class LineReporter:
    """Unattended runs: one log line per task start/end and per notice, no bars."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskStarted):
            log.info("%s %s: started", event.task, event.account)
        elif isinstance(event, TaskFinished):
            log.info("%s %s: %s", event.task, event.account, summary_text(event.summary))
        elif isinstance(event, Notice):
            prefix = f"{event.account}: " if event.account else ""
            log.log(logging.getLevelName(event.level.upper()), "%s%s", prefix, event.text)


class JsonReporter:
    """--json: one JSON object per line on stderr for notices and finished tasks."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskFinished):
            record = {"event": "finished", "task": event.task, "account": event.account,
                      **event.summary}
        elif isinstance(event, Notice):
            record = {"event": "notice", "level": event.level, "account": event.account,
                      "text": event.text}
        else:
            return
        with self.lock:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()


class TqdmReporter:
    """On a terminal: a bar per task with messages, bytes and ETA."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bars: dict[tuple[str, str], tqdm] = {}
        self.bytes_done: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Notice):
            tqdm.write(f"{event.account + ': ' if event.account else ''}{event.text}",
                       file=self.stream)
            return
        key = (event.task, event.account)
        if isinstance(event, TaskStarted):
            self.bars[key] = tqdm(total=event.total, desc=f"{event.task} {event.account}",
                                  unit="msg", file=self.stream, leave=True,
                                  position=len(self.bars), dynamic_ncols=True)
            self.bytes_done[key] = 0
        bar = self.bars.get(key)
        if bar is None:
            return
        if isinstance(event, TaskTotals):
            bar.total = event.total
            bar.refresh()
        elif isinstance(event, TaskAdvanced):
            self.bytes_done[key] += event.nbytes
            bar.set_postfix_str(human_bytes(self.bytes_done[key]), refresh=False)
            bar.update(event.count)
        elif isinstance(event, TaskFinished):
            bar.close()
            del self.bars[key], self.bytes_done[key]
