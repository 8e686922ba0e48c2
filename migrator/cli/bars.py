"""Progress bars on a terminal: one per running task, log lines above them, none left over.

Anything else written to the terminal while bars are drawn lands inside a bar
(`...3.3 MB]created target folder Reisen`), so log records and notices go through
`tqdm.write`, which lifts the bars, prints the line and draws them again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from migrator.cli.progress import human_bytes
from migrator.cli.tracking import Key, TaskState, Tracker
from migrator.engine.events import Event, Notice, TaskFinished, TaskStarted


class BarSafeHandler(logging.StreamHandler):
    """A log handler that writes above the bars: tqdm's logging redirect, on our stream.

    `tqdm.contrib.logging.logging_redirect_tqdm` only swaps handlers that write to
    sys.stdout/sys.stderr; ours writes to the injected stream, so it does the same itself.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never break the run; report as logging does
            self.handleError(record)


def postfix(state: TaskState) -> str:
    """Bytes beside the count, where the task moves bytes at all (verify counts only)."""
    size = state.total_bytes
    if size is None:
        return human_bytes(state.nbytes) if state.nbytes else ""
    return f"{human_bytes(state.nbytes)} of {human_bytes(size)}"


class TqdmReporter:
    """On a terminal: a bar per running task with count, bytes, rate and ETA.

    A bar's total comes from the Tracker (stable for the push of a migrate); a bar vanishes
    when its task ends (the command prints the outcome), and `close` clears any left.
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float]) -> None:
        self.stream = stream
        self.clock = clock
        self.tracker = Tracker()
        self.bars: dict[Key, tqdm] = {}
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Notice):
            tqdm.write(f"{event.account + ': ' if event.account else ''}{event.text}",
                       file=self.stream)
            return
        state = self.tracker.update(event, self.clock())
        if state is None:
            return
        key = (state.task, state.account)
        if isinstance(event, TaskStarted):
            self.bars[key] = tqdm(total=state.total, desc=state.name, unit="msg",
                                  file=self.stream, leave=False, dynamic_ncols=True)
        bar = self.bars.get(key)
        if bar is None:
            return
        if isinstance(event, TaskFinished):
            bar.close()
            del self.bars[key]
            return
        bar.set_postfix_str(postfix(state), refresh=False)
        bar.update(state.done - bar.n)
        self._fix_totals()

    def _fix_totals(self) -> None:
        """A pull's plan also sets the total of the push it feeds: redraw whichever moved."""
        for key, bar in self.bars.items():
            state = self.tracker.running.get(key)
            if state is not None and bar.total != state.total:
                bar.total = state.total
                bar.refresh()

    def close(self) -> None:
        with self.lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()
