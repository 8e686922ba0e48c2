"""A server whose port another process took between the pick and the server's bind starts
again on new ports, and never serves from a port another process answers on (under
pytest-xdist another worker's servers are that other process)."""
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


def test_a_dovecot_whose_port_was_taken_starts_on_other_ports(certs, monkeypatch, closing):
    taken = []
    first_pick_partly_taken(dovecot, monkeypatch, taken)
    try:
        with SourceServer(certs) as server:
            held = taken[0].getsockname()[1]
            assert held not in server._ports()
            server.add_user("ida", "pw")
            client = closing(imapclient.IMAPClient(server.host, server.imap_port, ssl=False))
            client.login("ida", "pw")
    finally:
        taken[0].close()


def test_a_cyrus_whose_port_was_taken_starts_on_other_ports(certs, monkeypatch, closing):
    if cyrus.missing_reason() and os.environ.get("CI") != "true":
        pytest.skip(cyrus.missing_reason())
    taken = []
    first_pick_partly_taken(cyrus, monkeypatch, taken)
    try:
        with CyrusServer(certs) as server:
            held = taken[0].getsockname()[1]
            assert held not in server._ports()
            server.add_user("ida", "pw")
            with server.client("ida") as client:
                assert client.select_folder("INBOX")
    finally:
        taken[0].close()
