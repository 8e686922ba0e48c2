"""Crash points for the kill -9 tests, inert unless MIGRATOR_TEST_KILL_AT is set.

`MIGRATOR_TEST_KILL_AT=POINT[:N]` makes the process SIGKILL itself the N-th time (default 1)
it reaches POINT, so a test can stop a real `migrator pull` at an exact instant:
`planned` (a folder's flag changes and gone marks committed, its messages not fetched),
`fetched` (a message body read from the network, not yet written), `blobs-durable` (a batch's
blobs synced, its rows not committed), `committed` (a batch's rows committed, and with the
last batch of a folder its sync state). POP3 pull has `retrieved`, `blobs-durable`,
`batch-stored`, `before-quit` and `after-quit`; an import (file source) has `import-read`,
`blobs-durable` and `import-committed`; push names its own (engine/push/worker.py).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "MIGRATOR_TEST_KILL_AT"
_SPEC = os.environ.get(ENV, "")
_seen: Counter[str] = Counter()
_lock = threading.Lock()


def kill_point(name: str) -> None:
    if not _SPEC:
        return
    point, _, count = _SPEC.partition(":")
    if point != name:
        return
    with _lock:
        _seen[name] += 1
        if _seen[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
