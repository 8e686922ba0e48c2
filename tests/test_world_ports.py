"""A server whose port another process took between the pick and the server's bind starts
again on new ports, and never serves from a port another process answers on (under
pytest-xdist another worker's servers are that other process)."""
import contextlib
import os
import socket

import imapclient
import pytest

from tests.world import cyrus, dovecot
from tests.world.cyrus import CyrusServer
from tests.world.dovecot import SourceServer

pytestmark = pytest.mark.world


def first_pick_partly_taken(module, monkeypatch, taken):
    """Make the server module's first `free_ports` pick include a port another socket
    listens on (the race that picks and binds by different processes can lose)."""
    picks = module.free_ports

    def pick(count):
        ports = picks(count)
        if not taken:
            taken.append(socket.create_server(("127.0.0.1", ports[1])))
        return ports

    monkeypatch.setattr(module, "free_ports", pick)


@contextlib.contextmanager
def started_beside_a_taken_port(module, server_class, certs, monkeypatch):
    """A server of `module` started while its first pick of ports holds one that another
    socket listens on: it must serve from other ports."""
    taken = []
    first_pick_partly_taken(module, monkeypatch, taken)
    try:
        with server_class(certs) as server:
            held = taken[0].getsockname()[1]
            assert held not in server._ports()
            server.add_user("ida", "pw")
            yield server
    finally:
        taken[0].close()


def test_a_dovecot_whose_port_was_taken_starts_on_other_ports(certs, monkeypatch, closing):
    with started_beside_a_taken_port(dovecot, SourceServer, certs, monkeypatch) as server:
        client = closing(imapclient.IMAPClient(server.host, server.imap_port, ssl=False))
        client.login("ida", "pw")


def test_a_cyrus_whose_port_was_taken_starts_on_other_ports(certs, monkeypatch, closing):
    if cyrus.missing_reason() and os.environ.get("CI") != "true":
        pytest.skip(cyrus.missing_reason())
    with started_beside_a_taken_port(cyrus, CyrusServer, certs, monkeypatch) as server, \
            server.client("ida") as client:
        assert client.select_folder("INBOX")
