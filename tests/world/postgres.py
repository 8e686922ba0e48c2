"""A private PostgreSQL cluster for the tests: `initdb` into a temp dir, `pg_ctl` on a free
loopback port, stopped and removed at the end; never the system's own cluster.

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to the `postgres`
account that Debian's package creates, and its directory lives outside pytest's temp tree
(that tree is private to root). Durability settings are off: a test cluster that loses its
data on a power cut loses nothing anyone needs, and fsync on every commit would dominate the
tests' time.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

from migrator.archive.locks import process_alive
from tests.world.net import HOST, free_port

BIN_ENV = "MIGRATOR_TEST_PG_BIN"
USER = "migrator"
START_TIMEOUT = 60
START_ATTEMPTS = 3  # a port taken between its pick and the server's bind: start on another
RUN_AS = "postgres"  # the account PostgreSQL runs under when the tests run as root
PREFIX = "migrator-pg-"
OWNER = "owner.pid"  # the test process a cluster belongs to


def bin_dir():
    """Where initdb and pg_ctl are: $MIGRATOR_TEST_PG_BIN, else Debian's newest version."""
    if os.environ.get(BIN_ENV):
        return os.environ[BIN_ENV]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def missing_reason():
    """Why no private PostgreSQL can run here (None if it can)."""
    directory = bin_dir()
    if directory is None or not os.access(os.path.join(directory, "initdb"), os.X_OK):
        return ("PostgreSQL server binaries not found "
                f"(apt-get install postgresql, or set ${BIN_ENV})")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root needs the {RUN_AS!r} account to run PostgreSQL"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    return None


def reap_orphans(directory):
    """Stop and remove clusters whose test process is gone: pg_ctl runs the server detached,
    so a test run killed before its teardown (SIGKILL, a timeout) would leave it running."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), PREFIX + "*")):
        try:
            with open(os.path.join(path, OWNER)) as owner:
                pid = int(owner.read().strip() or 0)
        except (OSError, ValueError):
            continue  # not one of ours, or still being made
        if pid and process_alive(pid):
            continue
        data = os.path.join(path, "data")
        if directory and os.path.exists(os.path.join(data, "postmaster.pid")):
            command = [os.path.join(directory, "pg_ctl"), "-D", data, "-m", "immediate",
                       "-w", "stop"]
            if os.geteuid() == 0:
                command = ["runuser", "-u", RUN_AS, "--", *command]
            subprocess.run(command, capture_output=True, timeout=60, cwd=path)
        shutil.rmtree(path, ignore_errors=True)


class PostgresServer:
    """A started cluster: `url(name)` for SQLAlchemy, `create_database()` for a fresh one."""

    def __init__(self, max_connections=200):
        self.max_connections = max_connections
        self.port = free_port()
        self.bin = bin_dir()
        self.dir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def log_path(self):
        return os.path.join(self.dir, "postgres.log")

    def start(self):
        reap_orphans(self.bin)
        self.dir = tempfile.mkdtemp(prefix=PREFIX)
        with open(os.path.join(self.dir, OWNER), "w") as owner:
            owner.write(str(os.getpid()))
        if os.geteuid() == 0:
            account = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        try:
            self._run("initdb", "-D", self.data, "-U", USER, "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            for attempt in range(START_ATTEMPTS):
                if attempt:
                    self.port = free_port()
                self._write_settings()
                started = self._run("pg_ctl", "-D", self.data, "-l", self.log_path, "-w",
                                    "-t", str(START_TIMEOUT), "start", check=False)
                if started.returncode == 0:
                    return
                if "Address already in use" not in self.log_text():
                    break  # not a port taken since it was picked: starting again won't help
            raise RuntimeError(f"pg_ctl start failed ({started.returncode}): "
                               f"{started.stderr.strip() or started.stdout.strip()}\n"
                               f"{self.log_text()[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def _write_settings(self):
        """The port and the rest, in postgresql.auto.conf (read last, so it wins); written
        anew for each start attempt."""
        with open(os.path.join(self.data, "postgresql.auto.conf"), "w") as conf:
            conf.write(f"listen_addresses = '{HOST}'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\n"
                       f"max_connections = {self.max_connections}\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def stop(self):
        if self.dir is None:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def halt(self):
        """The server gone at once, as if its host died; its data is kept for `resume`."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def resume(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log_path, "-w",
                  "-t", str(START_TIMEOUT), "start")

    def url(self, database="postgres"):
        return f"postgresql+psycopg://{USER}@{HOST}:{self.port}/{database}"

    def create_database(self, name=None):
        """A new empty database; returns its SQLAlchemy URL."""
        name = name or f"m_{uuid.uuid4().hex[:12]}"
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user=USER, dbname="postgres",
                             autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+): copies the template's files instead of writing them
            # all to the WAL, in half the time
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.url(name)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as log:
                return log.read()
        except OSError:
            return ""

    def _run(self, program, *args, check=True):
        command = [os.path.join(self.bin, program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                cwd=self.dir)
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
        return result
