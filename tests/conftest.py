"""Pytest fixtures over tests.world: thin wrappers that start and always stop.

Servers are function-scoped: a Dovecot starts in well under a second, and a
fresh one per test keeps tests independent. On failure pytest shows the tail
of the Dovecot log printed at teardown.
"""
import contextlib
import os

import pytest

from tests.world import manifests
from tests.world.certs import make_certs
from tests.world.corpus import generate
from tests.world.cyrus import CyrusServer, missing_reason
from tests.world.dovecot import Office365Server, SourceServer
from tests.world.oauth import OAuthService
from tests.world.postgres import PostgresServer
from tests.world.postgres import missing_reason as postgres_missing_reason
from tests.world.proxy import FaultProxy


def pytest_configure(config):
    config.addinivalue_line("markers", "world: uses the local Dovecot/OAuth test world")
    config.addinivalue_line("markers", "manifest_databases: run each test on an SQLite and on a "
                            "PostgreSQL manifest (tests.world.manifests)")
    config.addinivalue_line("markers", "sqlite_manifest_only: in a module run on both, a test "
                            "about the SQLite file itself")


def pytest_generate_tests(metafunc):
    """Tests marked `manifest_databases` run once per manifest kind."""
    node = metafunc.definition
    if (node.get_closest_marker("manifest_databases")
            and not node.get_closest_marker("sqlite_manifest_only")):
        metafunc.parametrize("manifest_database", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def manifest_database(request):
    """Where this test's manifests live: "sqlite" (the default) or "postgresql" (one
    database per archive on the session's private cluster)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgresql":
        manifests.use_postgresql(request.getfixturevalue("postgres_server"))
    try:
        yield kind
    finally:
        manifests.use_sqlite()


def _print_log_tail(server, lines=60):
    print(f"--- {server.profile} server log (last {lines} lines) ---")
    print("\n".join(server.log_text().splitlines()[-lines:]))


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """CertPaths(ca_cert, cert, key) for 127.0.0.1/localhost, one per session."""
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def source_server(request, certs):
    """A started SourceServer (IMAP/IMAPS/POP3/POP3S, passwords); under `on_each_server`
    also a CyrusServer (plain IMAP/POP3 only)."""
    if getattr(request, "param", "dovecot") == "cyrus":
        yield request.getfixturevalue("cyrus_server")
        return
    with SourceServer(certs) as server:
        yield server
        _print_log_tail(server)


@pytest.fixture
def cyrus_server(certs):
    """A started CyrusServer. Skipped where Cyrus is not unpacked (a developer machine that
    never ran tests/world/install_cyrus.sh); in CI (CI=true) that is a failure instead."""
    reason = missing_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Cyrus profile: {reason}")
        pytest.skip(reason)
    with CyrusServer(certs) as server:
        yield server
        _print_log_tail(server)


@pytest.fixture
def oauth_service(certs):
    """A started OAuthService (HTTPS token endpoints + HTTP introspection)."""
    with OAuthService(certs) as service:
        yield service


@pytest.fixture
def office365_factory(certs, oauth_service):
    """Call with Office365Server keyword arguments (e.g. max_mail_size="1M")."""
    with contextlib.ExitStack() as stack:
        servers = []

        def make(**kwargs):
            server = stack.enter_context(
                Office365Server(certs, oauth_service.introspection_url, **kwargs))
            servers.append(server)
            return server

        yield make
        for server in servers:
            _print_log_tail(server)


@pytest.fixture
def office365_server(office365_factory):
    """A started Office365Server bound to the `oauth_service` fixture."""
    return office365_factory()


@pytest.fixture
def fault_proxy():
    """Call with FaultProxy arguments; returns a started proxy, stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(FaultProxy(*args, **kwargs))


@pytest.fixture
def closing():
    """`closing(conn)` registers a client connection (imaplib, imapclient, poplib,
    socket) to be closed at teardown, and returns it."""
    with contextlib.ExitStack() as stack:
        def track(conn):
            stack.callback(_close_quietly, conn)
            return conn

        yield track


def _close_quietly(conn):
    with contextlib.suppress(OSError):
        if hasattr(conn, "logout"):  # an IMAP client: its close() is the IMAP command
            conn.shutdown()
        else:
            conn.close()


@pytest.fixture(scope="session")
def corpus():
    """A small deterministic corpus (messages capped at 200 KB) with every oddity."""
    return generate(seed=1234, count=60, max_size=200_000)


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL cluster for the session (a cluster takes seconds to create; a
    database, milliseconds). Skipped where PostgreSQL is absent; under CI=true, a failure."""
    reason = postgres_missing_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """The SQLAlchemy URL of a new, empty database of its own for this test."""
    return postgres_server.create_database()
