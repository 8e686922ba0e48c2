"""Test world for migrator: local Dovecot servers, a private Cyrus (a second
server profile, tests/world/cyrus.py), an OAuth2 service, a fault-injecting
proxy and a deterministic mail corpus.

Everything here is plain Python (no pytest imports) so benchmarks can reuse
it; tests/conftest.py wraps it in fixtures.
"""
