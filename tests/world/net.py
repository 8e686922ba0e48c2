"""Loopback port helpers shared by the servers of the test world."""
import socket
import time

HOST = "127.0.0.1"


def free_port():
    """A port that was free a moment ago (the OS picked it for port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_ports(count):
    """`count` different ports that were free a moment ago: their sockets are held until all
    are picked, so the OS cannot hand out one of them twice (four separate `free_port` calls
    once gave Dovecot the same port for two listeners: "duplicate listener")."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port, host=HOST):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    """Poll `predicate` until true; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
