"""The test world's port helpers."""

import socket

from tests.world import net
from tests.world.net import free_ports


def test_the_ports_a_server_is_given_are_all_different():
    for _ in range(50):
        assert len(set(free_ports(4))) == 4


def test_each_xdist_worker_picks_from_its_own_block_below_the_ephemeral_range(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "5d2f0c")
    blocks = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        block = net._Block()
        blocks.append({block.take() for _ in range(20)} | {block.start,
                                                           block.start + net.BLOCK - 1})
    for picked in blocks:
        assert min(picked) >= net.LOWEST and max(picked) < net._ephemeral_low()
    assert not blocks[0] & blocks[1] and not blocks[1] & blocks[2] and not blocks[0] & blocks[2]


def test_another_run_starts_from_another_block(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    starts = set()
    for run in ("00", "01"):
        monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", run)
        starts.add(net._Block().start)
    assert len(starts) == 2


def test_a_port_taken_by_another_process_is_passed_over():
    """Starts where two ports in a row are free: this worker's own servers take ports from
    the same block, and one of theirs may still be bound or in TIME_WAIT when this runs (CI
    once found the block's second port so, and took the third)."""
    block = net._Block()
    first = next(index for index in range(net.BLOCK - 1)
                 if net._bindable(block.start + index)
                 and net._bindable(block.start + index + 1))
    block.next = first
    with socket.socket() as holder:
        holder.bind((net.HOST, block.start + first))
        assert block.take() == block.start + first + 1
