"""What every benchmark needs: the test world, a timed subprocess with its peak RSS, a durable
file sink for raw baselines, and a table.

Kept free of any one protocol so the POP3 and push benchmarks can share it.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SMOKE_HELP = ("a quick check that the benchmark still runs (the test suite does this): no "
              "waiting for a quiet disk, no 30 MB message; the figures mean nothing")


# -- the test world -----------------------------------------------------------------------
@contextlib.contextmanager
def certificates() -> Iterator[Any]:
    """Throw-away CA and server certificate (tests/world/certs.py), removed afterwards."""
    from tests.world.certs import make_certs

    directory = tempfile.mkdtemp(prefix="migrator-bench-certs-")
    try:
        yield make_certs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def source_server() -> Iterator[Any]:
    """A started test-world source Dovecot (IMAP/POP3, passwords), stopped afterwards."""
    from tests.world.dovecot import SourceServer

    with certificates() as certs, SourceServer(certs) as server:
        yield server


@contextlib.contextmanager
def fault_proxy(port: int, delay_ms: float = 0.0, imap: bool = False) -> Iterator[Any]:
    """The test world's proxy in front of `port`, adding `delay_ms` each way.

    `imap=False` relays bytes without parsing IMAP, so the proxy's own CPU cost stays low.
    """
    from tests.world.proxy import FaultProxy

    with FaultProxy(port, delay=delay_ms / 1000.0, imap=imap) as proxy:
        yield proxy


# -- timed runs ---------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    status: int
    stdout: str = ""
    stderr: str = ""
    cpu: float = 0.0  # user + system seconds (a loaded machine stretches wall time, not this)


def run_process(argv: Sequence[str], env: dict[str, str] | None = None,
                cwd: Path = ROOT, timeout: float = 3600) -> Run:
    """Run a command; its wall time and peak RSS.

    The peak is the child's VmHWM (Linux), read every few milliseconds until it exits: a
    high-water mark, so the last reading holds the peak. (wait4's ru_maxrss would do, but a
    forked child inherits its parent's figure, which for a benchmark holding a corpus in
    memory is the parent's size, not the child's.)
    """
    started = time.monotonic()
    peak_kb = 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                raise TimeoutError(f"{argv} took more than {timeout}s")
            time.sleep(0.003)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if not peak_kb:  # not Linux: the rusage figure, with the caveat above
            peak_kb = float(usage.ru_maxrss)
        out.seek(0)
        err.seek(0)
        return Run(seconds, peak_kb / 1024.0, process.returncode,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   usage.ru_utime + usage.ru_stime)


def _high_water_kb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def migrator_env(**extra: str) -> dict[str, str]:
    """Environment for running `python -m migrator` from this checkout, as installed: with
    its modules' bytecode cached (PYTHONDONTWRITEBYTECODE, set on some machines, would make
    every run compile them again, about 0.1 CPU s; pip compiles them at install)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def migrator(*args: str | Path, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> Run:
    """`python -m migrator ARGS` from this checkout (or from `cwd`, another one)."""
    return run_process([sys.executable, "-m", "migrator", *map(str, args)], env=env,
                       cwd=cwd or ROOT)


def in_forked_child(function: Callable[..., float], *args: Any) -> float:
    """`function(*args)` in a forked process of its own, as migrator runs (the test world's
    servers and proxy run in this one); what it raised comes back as a RuntimeError."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child, args=(function, args, results))
    child.start()
    outcome = results.get(timeout=3600)
    child.join()
    if isinstance(outcome, str):
        raise RuntimeError(f"baseline failed: {outcome}")
    return float(outcome)


def _child(function: Callable[..., float], args: tuple[Any, ...], results: Any) -> None:
    try:
        results.put(function(*args))
    except BaseException as exc:
        results.put(f"{exc.__class__.__name__}: {exc}")


# -- the durable raw sink -------------------------------------------------------------------
class DurableSink:
    """Writes each item to its own file: temp file, fsync, rename (what a minimal durable
    archive must do at the least). Thread-safe; counts messages and bytes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.messages = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._names = iter(range(1 << 62))

    def write(self, data: bytes) -> None:
        with self._lock:
            name = f"{next(self._names):012d}"
        final = self.directory / name
        temp = self.directory / f".{name}.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        with self._lock:
            self.messages += 1
            self.bytes += len(data)


# -- reporting ------------------------------------------------------------------------------
@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(cell) for cell in cells])

    def render(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(self.headers, widths,
                                                           strict=True)) + " |"
        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        body = ["| " + " | ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                                  for c, w in zip(row, widths, strict=True)) + " |"
                for row in self.rows]
        return "\n".join([line, rule, *body])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("x", "").strip().isdigit()


def machine() -> str:
    """One line describing where the figures come from."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, load {load:.1f} at start")


def settle_disk(path: Path, quiet: float = 2.0, limit: float = 60.0) -> float:
    """Wait until the block device holding `path` has done no write or discard for `quiet`
    seconds (at most `limit`); returns the seconds waited.

    A run's `syncfs` writes out every dirty page of the filesystem, its own and anybody
    else's (a benchmark's freshly seeded maildrop, say), and a device still trimming what was
    just deleted (mount option `discard`) serves writes slowly: either would be charged to
    the program measured. A second effect of recent deletions is not visible here: on ext4
    without a journal, new inodes skip those deleted in the last minutes, and creating 5,000
    files took 2.6-4 s instead of 0.4 s; `settle_file_creation` waits that out, and the
    benchmarks delete nothing between rounds.
    Linux only (reads /sys/dev/block/*/stat); elsewhere it returns at once.
    """
    device = os.stat(path).st_dev
    stat = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat")
    if not stat.exists():
        return 0.0

    def activity() -> tuple[int, ...]:
        fields = [int(value) for value in stat.read_text().split()]
        return tuple(fields[4:7] + fields[11:14])  # writes and discards: ios, merges, sectors

    started = time.monotonic()
    last, still_since = activity(), started
    while (now := time.monotonic()) - still_since < quiet and now - started < limit:
        time.sleep(0.25)
        current = activity()
        if current != last:
            last, still_since = current, time.monotonic()
    return time.monotonic() - started


def settle_file_creation(directory: Path, usual_ms: float = 0.25, limit: float = 420.0) -> float:
    """Wait (at most `limit` seconds) until creating a small file in `directory`, spread over
    256 subdirectories as an archive does, takes less than `usual_ms`; returns the seconds
    waited, and says so when it waits.

    After tens of thousands of files were deleted (a test run's temp dirs), ext4 without a
    journal creates files several times slower for one to six minutes (see `settle_disk`).
    The probes are small files left in place (deleting them would restart the clock).
    """
    started = time.monotonic()
    for attempt in itertools.count():
        probe = Path(tempfile.mkdtemp(prefix="probe-", dir=directory))
        began = time.perf_counter()
        for number in range(2048):
            subdir = probe / f"{number % 256:02x}"
            if number < 256:
                subdir.mkdir()
            (subdir / f"{number}.probe").write_bytes(b"x" * 1024)
        per_file_ms = (time.perf_counter() - began) * 1000 / 2048
        waited = time.monotonic() - started
        if per_file_ms < usual_ms or waited >= limit:
            if attempt:
                print(f"  creating a file: {per_file_ms:.2f} ms after waiting {waited:.0f} s",
                      flush=True)
            return waited
        if not attempt:
            print(f"  creating a file takes {per_file_ms:.2f} ms here (recent deletions?); "
                  f"waiting up to {limit:.0f} s for it to drop below {usual_ms} ms", flush=True)
        time.sleep(15)


def settle(directory: Path) -> None:
    """Both waits, in the order a timed run needs them: file creation at its usual pace
    (`settle_file_creation`), then a quiet device (`settle_disk`); says when it waited."""
    settle_file_creation(directory)
    waited = settle_disk(directory)
    if waited > 5:
        print(f"  waited {waited:.0f} s for the disk to settle", flush=True)


def scratch(prefix: str) -> Path:
    """A temp dir on the filesystem of the system temp dir (removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix=prefix))
