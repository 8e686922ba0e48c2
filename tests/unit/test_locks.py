"""Account locks: a second holder is refused at once; a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from migrator.archive.locks import account_lock, lock_path
from migrator.errors import LockedError

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from migrator.archive.locks import account_lock
    with account_lock(Path(sys.argv[1]), "alice"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_second_holder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {holder.pid}"), \
                account_lock(tmp_path, "alice"):
            pass
        with account_lock(tmp_path, "bob"):  # other accounts are free
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock_path(tmp_path, "alice").read_text().strip() == str(holder.pid)
    with account_lock(tmp_path, "alice"):
        assert lock_path(tmp_path, "alice").read_text().strip() == str(os.getpid())


def test_lock_is_released_after_the_block(tmp_path: Path) -> None:
    with account_lock(tmp_path, "alice"):
        pass
    with account_lock(tmp_path, "alice"):
        pass
