"""The private PostgreSQL cluster: reachable on loopback, one empty database per test."""
import psycopg
import sqlalchemy


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
