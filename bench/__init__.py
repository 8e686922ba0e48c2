"""Benchmarks (not tests): throughput and memory against a raw-protocol baseline.

Run one with `python -m bench.pull --help`; each starts and stops its own test-world servers
on 127.0.0.1 (Dovecot from tests/world) and prints a table.
"""
