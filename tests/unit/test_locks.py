"""Account locks: a second holder is refused at once; a dead holder's lock is taken over."""

from __future__ import annotations

import logging
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


TAKING_OVER = "taking over the lock of a run that ended without releasing it"


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="migrator.archive.locks")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock_path(tmp_path, "alice").read_text().strip() == str(holder.pid)
    with account_lock(tmp_path, "alice"):
        assert lock_path(tmp_path, "alice").read_text().strip() == str(os.getpid())
    assert f"{TAKING_OVER} (pid {holder.pid})" in caplog.text


def test_a_run_that_ended_normally_is_not_reported_as_dead(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="migrator.archive.locks")
    clean = textwrap.dedent("""
        import sys
        from pathlib import Path
        from migrator.archive.locks import account_lock
        with account_lock(Path(sys.argv[1]), "alice"):
            pass
    """)
    subprocess.run([sys.executable, "-c", clean, str(tmp_path)], check=True, timeout=60)

    assert lock_path(tmp_path, "alice").read_text() == ""  # released: no pid left behind
    with account_lock(tmp_path, "alice"):
        pass
    assert TAKING_OVER not in caplog.text


def test_lock_is_released_after_the_block(tmp_path: Path) -> None:
    with account_lock(tmp_path, "alice"):
        pass
    with account_lock(tmp_path, "alice"):
        pass
