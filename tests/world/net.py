"""Loopback port helpers shared by the servers of the test world.

Dovecot, Cyrus and PostgreSQL are given a port number and bind it themselves, so between the
pick and their bind another process may take it. The ports the OS hands out for port 0 come
from its ephemeral range, where every other process's picks and the local ports of outgoing
connections come from too. So ports are picked below that range instead (from LOWEST up),
from a block of their own per pytest-xdist worker (PYTEST_XDIST_WORKER=gwN, gw0 without
xdist): two workers of one run never pick the same port, and the OS never hands one of them
out. Which block gw0 gets depends on the run (PYTEST_XDIST_TESTRUNUID, shared by its workers;
without xdist a random one), so two runs on one machine at the same time seldom share one.
Within its block a process takes the ports in turn from a random start (a port comes back
only after the whole block), each one checked free by binding it. Where two runs do share a
block, the servers start again on new ports when theirs was taken (private_server.py,
postgres.py).
"""
import os
import random
import socket
import time

HOST = "127.0.0.1"
BLOCK = 1500  # ports per worker: the ~1,000 servers of a whole run come back to a port rarely
LOWEST = 10000  # below: well-known and registered services' ports, left alone
_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def _ephemeral_low():
    try:
        with open(_RANGE_FILE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _blocks():
    """How many blocks fit between LOWEST and the ephemeral range."""
    return max(0, (_ephemeral_low() - LOWEST) // BLOCK)


def _block_index():
    """This worker's block: the run's first block plus the worker's number."""
    blocks = _blocks()
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    first = int(run, 16) if run and all(c in "0123456789abcdef" for c in run) else None
    if first is None:
        first = random.randrange(1 << 30)
    digits = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    worker = int(digits) if digits.isdigit() else 0
    return (first + worker) % blocks if blocks else 0


class _Block:
    """This process's block of ports and where in it the next pick starts."""

    def __init__(self):
        self.start = LOWEST + _block_index() * BLOCK
        self.next = random.randrange(BLOCK)

    def take(self):
        if not _blocks():  # an ephemeral range reaching down to LOWEST leaves no room
            return _any_free_port()
        for _ in range(BLOCK):
            port = self.start + self.next
            self.next = (self.next + 1) % BLOCK
            if _bindable(port):
                return port
        raise RuntimeError(f"no free loopback port in {self.start}-{self.start + BLOCK - 1}")


_block = None


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def _any_free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_port():
    """A port that was free a moment ago and that no other worker of this run picks."""
    return free_ports(1)[0]


def free_ports(count):
    """`count` different ports that were free a moment ago (see the module docstring)."""
    global _block
    if _block is None:
        _block = _Block()
    return [_block.take() for _ in range(count)]


def port_open(port, host=HOST):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def listening_inodes(port, host=HOST):
    """{"socket:[INODE]"} of the sockets listening on host:port, as /proc/PID/fd links name
    them; None where /proc/net/tcp cannot be read."""
    local = "".join(f"{int(part):02X}" for part in reversed(host.split("."))) + f":{port:04X}"
    try:
        with open("/proc/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return None
    return {f"socket:[{row[9]}]" for row in rows if row[1] == local and row[3] == "0A"}


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    """Poll `predicate` until true; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
