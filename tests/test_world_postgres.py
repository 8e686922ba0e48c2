"""The private PostgreSQL cluster: reachable on loopback, one empty database per test."""
import os
import socket

import psycopg
import pytest
import sqlalchemy

from tests.world.postgres import OWNER, PostgresServer, reap_orphans


def test_each_test_gets_its_own_empty_database(postgres_server, postgres_url):
    other = postgres_server.create_database()
    assert other != postgres_url
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE t (x int)"))
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()
    with psycopg.connect(sqlalchemy.make_url(other).render_as_string(hide_password=False)
                         .replace("postgresql+psycopg", "postgresql")) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone()
    assert tables == (0,)


def test_cluster_listens_on_loopback_only(postgres_server):
    assert 'listening on IPv4 address "127.0.0.1"' in postgres_server.log_text()


def test_a_cluster_whose_test_process_died_is_stopped_and_removed(postgres_server):
    orphan = PostgresServer(max_connections=10)
    orphan.start()
    try:
        with open(os.path.join(orphan.dir, OWNER), "w") as owner:
            owner.write("999999999")  # no such process: its test run was killed
        reap_orphans(orphan.bin)
        assert not os.path.exists(orphan.dir)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=orphan.port, user="migrator",
                            dbname="postgres", connect_timeout=5)
        assert postgres_server.create_database()  # the living run's cluster is left alone
    finally:
        orphan.stop()


def test_a_cluster_whose_port_was_taken_meanwhile_starts_on_another(postgres_server):
    server = PostgresServer(max_connections=10)
    with socket.create_server(("127.0.0.1", server.port)) as taker:
        taken = taker.getsockname()[1]
        with server:
            assert server.port != taken
            with psycopg.connect(host="127.0.0.1", port=server.port, user="migrator",
                                 dbname="postgres", connect_timeout=5) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
