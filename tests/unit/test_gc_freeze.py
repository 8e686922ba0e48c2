"""A job's start keeps the objects alive then out of the garbage collector's sweeps, once per
process (a later freeze could keep cyclic garbage forever). Run in a child interpreter: a
freeze in the test process would hold on to everything the other tests leave behind."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from migrator.budget import freeze_startup_objects
assert gc.get_freeze_count() == 0
freeze_startup_objects()
first = gc.get_freeze_count()
later = [[n] for n in range(1000)]  # objects made after the job started
freeze_startup_objects()
print(first, gc.get_freeze_count())
"""


def test_the_first_call_freezes_what_exists_and_later_calls_nothing_more() -> None:
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True, timeout=60)
    first, second = map(int, run.stdout.split())
    assert first > 1000  # the modules' objects at least
    assert second == first
