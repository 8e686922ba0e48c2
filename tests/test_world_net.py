"""The test world's port helpers."""

from tests.world.net import free_ports


def test_the_ports_a_server_is_given_are_all_different():
    for _ in range(50):
        assert len(set(free_ports(4))) == 4
