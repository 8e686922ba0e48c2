"""CPU seconds of everything a benchmark run keeps busy, not only the program measured.

On a 2-core machine the servers, the proxy and the program share the cores, so a run can be
CPU-bound although the program itself is not: the sum of everybody's CPU seconds over two
cores is a floor under the run's wall time. Linux only (reads /proc); elsewhere every figure
is 0.

- a server: its process group (a test-world Dovecot runs as the leader of its own group),
  each live member's own time plus what it collected from children that exited (an `imap`
  process, once its connection ends, is reaped by the master into the master's figure);
- this process: its threads other than the calling one (the fault proxy's event loops, the
  OAuth service); the calling thread only waits for the run;
- the machine: every core's busy time (/proc/stat), other users' work included.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _fields(path: str) -> list[str] | None:
    """/proc/.../stat's fields from the state on (the name may hold spaces or brackets)."""
    try:
        with open(path) as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_seconds(group: int | None) -> float:
    """User + system seconds of a process group: its members' own and their reaped children's."""
    if group is None or not os.path.isdir("/proc"):
        return 0.0
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _fields(f"/proc/{entry}/stat")
        if fields is not None and int(fields[2]) == group:
            ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / TICK


def helper_threads_seconds() -> float:
    """User + system seconds of this process's threads other than the calling one."""
    if not os.path.isdir("/proc/self/task"):
        return 0.0
    me = str(threading.get_native_id())
    ticks = 0
    for task in os.listdir("/proc/self/task"):
        fields = _fields(f"/proc/self/task/{task}/stat") if task != me else None
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICK


def children_seconds() -> float:
    """User + system seconds of this process's children that exited and were waited for."""
    times = os.times()
    return times.children_user + times.children_system


def machine_busy_seconds() -> float:
    """Busy seconds of all cores together since boot (everything but idle and iowait)."""
    try:
        with open("/proc/stat") as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(values[:8]) - values[3] - values[4]) / TICK  # up to steal; guests are in user


@dataclass
class Snapshot:
    """The counters at one instant; `since` gives the seconds spent between two."""

    servers: dict[str, float]
    helpers: float
    children: float
    machine: float

    @classmethod
    def take(cls, servers: Iterable[tuple[str, int | None]]) -> Snapshot:
        return cls({name: group_seconds(group) for name, group in servers},
                   helper_threads_seconds(), children_seconds(), machine_busy_seconds())

    def since(self, earlier: Snapshot) -> dict[str, float]:
        spent = {name: seconds - earlier.servers.get(name, 0.0)
                 for name, seconds in self.servers.items()}
        spent["proxy, OAuth (bench threads)"] = self.helpers - earlier.helpers
        spent["client (the program run)"] = self.children - earlier.children
        spent["machine (all users)"] = self.machine - earlier.machine
        return spent
