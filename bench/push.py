"""Benchmark `migrator push` against a pipelined raw-protocol APPEND baseline.

    python -m bench.push [--messages 3000] [--connections 4] [--delays 0,25] [--naive 120]

Fills an archive with a deterministic corpus (tests/world/corpus.py, heavy-tailed sizes) and
starts the test world's Exchange look-alike (Dovecot, XOAUTH2 against the local identity
service). For each added delay (the fault proxy, each way, bytes only):

- baseline: K raw TLS connections, XOAUTH2 with SASL-IR, then APPENDs with LITERAL+
  non-synchronizing literals, up to 64 in flight per connection, each message read from its
  archive file just before it is sent, into the same target folders migrator uses;
- push: `python -m migrator push` (a real subprocess: wall time, peak RSS, and the run's own
  duration from the manifest), into a fresh mailbox;
- naive (optional, a subset): imapclient's `append`, which waits for `+` and then for the
  tagged reply: two round trips per message, the way most tools append.

Every run writes into its own empty mailbox. Ratios are to the baseline's msgs/s at the same
delay, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import shutil
import sqlite3
import ssl
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    Table,
    fault_proxy,
    in_forked_child,
    machine,
    migrator,
    migrator_env,
    scratch,
)
from bench.raw_imap import append_pipelined, login, until
from tests.world.configs import Account, Config, Endpoint, OAuth

APP, SECRET = "bench-app", "bench-app-secret"
APP_SCOPE = ["https://outlook.office365.com/.default"]
FOLDERS = {"INBOX": "INBOX", "Sent": "Sent Items", "Drafts": "Drafts",
           "Archive.2019": "Archive/2019", "Reisen.Überblick": "Reisen/Überblick"}
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts"}


@dataclass(frozen=True)
class Stored:
    """One archived message as the baseline sends it."""

    path: Path
    size: int
    folder: str  # target folder
    flags: tuple[str, ...]
    internaldate: datetime.datetime


@dataclass
class World:
    certs: Any
    oauth: Any
    server: Any
    archive: Path
    messages: list[Stored]
    users: int = 0

    def mailbox(self) -> str:
        """A fresh, empty mailbox the app may open."""
        self.users += 1
        name = f"bench{self.users}@contoso.test"
        self.server.add_user(name)
        self.oauth.grant(APP, name)
        return name

    def token(self) -> str:
        import msal

        app = msal.ConfidentialClientApplication(
            APP, client_credential=SECRET, authority=self.oauth.authority,
            http_client=self.oauth.http_session(), instance_discovery=False)
        return str(app.acquire_token_for_client(scopes=APP_SCOPE)["access_token"])


@contextlib.contextmanager
def world(directory: Path, count: int) -> Iterator[World]:
    from tests.world.certs import make_certs
    from tests.world.dovecot import Office365Server
    from tests.world.oauth import OAuthService

    certs = make_certs(str(directory / "certs"))
    with OAuthService(certs) as oauth, \
            Office365Server(certs, oauth.introspection_url, max_mail_size="100M") as server:
        oauth.add_client(APP, SECRET)
        archive = directory / "archive"
        yield World(certs, oauth, server, archive, fill(archive, count))


def fill(archive: Path, count: int) -> list[Stored]:
    """The corpus into a migrator archive (the same ingest a pull uses)."""
    from migrator.archive.blobs import BlobStore
    from migrator.archive.db import open_manifest
    from migrator.archive.ingest import (
        FetchedMessage,
        add_messages,
        ensure_account,
        ensure_folder,
    )
    from tests.world.corpus import generate

    corpus = generate(seed=20240601, count=count, stdlib=False)
    manifest = open_manifest(f"sqlite:///{archive / 'manifest.sqlite'}")
    store = BlobStore(archive)
    stored = []
    try:
        with manifest.session() as session:
            account = ensure_account(session, "bench", "imap")
            ids = {name: ensure_folder(session, account, name, delimiter=".",
                                       special_use=SPECIAL.get(name)).id for name in FOLDERS}
        for name, folder_id in ids.items():
            items = [m for m in corpus if m.folder == name]
            for start in range(0, len(items), 500):
                chunk = items[start:start + 500]
                add_messages(manifest, store, folder_id, [
                    FetchedMessage(m.raw, uid=start + i + 1, uidvalidity=1,
                                   internaldate=m.internaldate.isoformat(), flags=m.flags)
                    for i, m in enumerate(chunk)])
            for item in items:
                stored.append(Stored(store.path(_sha(item.raw)), len(item.raw), FOLDERS[name],
                                     tuple(f for f in item.flags if f.startswith("\\")),
                                     item.internaldate))
    finally:
        manifest.close()
    return stored


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# -- the raw pipelined baseline ---------------------------------------------------------------
def baseline(port: int, world: World, connections: int, mailbox: str) -> float:
    """The baseline in a process of its own, like migrator (the proxy runs in this one)."""
    return in_forked_child(_baseline, port, world, connections, mailbox)


def _baseline(port: int, world: World, connections: int, mailbox: str) -> float:
    token = world.token()
    context = ssl.create_default_context(cafile=world.certs.ca_cert)
    shares = [world.messages[i::connections] for i in range(connections)]
    errors: list[BaseException] = []

    def run(share: list[Stored]) -> None:
        try:
            append_all(port, context, mailbox, token, share)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    started = time.monotonic()
    create_folders(port, context, mailbox, token)  # migrator has to create them too
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


def create_folders(port: int, context: ssl.SSLContext, mailbox: str, token: str) -> None:
    """CREATE the folders, then EXAMINE each (INBOX too, pipelined) on this one connection,
    as migrator's push SELECTs its folders before its workers APPEND. Dovecot builds a
    folder's indexes at its first open; four processes doing that at once can take their
    index locks in opposite orders, and the kernel's deadlock check then fails one (`fcntl
    ... Resource deadlock avoided`: Dovecot panics and drops that connection mid-baseline)."""
    from imapclient import imap_utf7

    names = ("Archive", "Archive/2019", "Reisen", "Reisen/Überblick")
    sock, stream = login(port, context, mailbox, token)
    with sock:
        for number, name in enumerate(names):
            tag = b"c%d" % number
            sock.sendall(tag + b' CREATE "' + imap_utf7.encode(name) + b'"\r\n')
            with contextlib.suppress(RuntimeError):  # already there
                until(stream, tag)
        opened = sorted(set(FOLDERS.values()))
        sock.sendall(b"".join(b'e%d EXAMINE "%s"\r\n' % (number, imap_utf7.encode(name))
                              for number, name in enumerate(opened)))  # one round trip
        for number in range(len(opened)):
            until(stream, b"e%d" % number)


def append_all(port: int, context: ssl.SSLContext, mailbox: str, token: str,
               messages: Sequence[Stored]) -> None:
    """Pipelined APPENDs into each message's folder, with its flags and date, each read from
    its archive file just before it is sent."""
    from imapclient import imap_utf7

    from migrator.targets.append_items import imap_date

    def appends() -> Iterator[tuple[bytes, bytes]]:
        for message in messages:
            flags = b" (" + " ".join(message.flags).encode() + b")" if message.flags else b""
            yield (b"\"%s\"%s \"%s\"" % (imap_utf7.encode(message.folder), flags,
                                        imap_date(message.internaldate).encode()),
                   message.path.read_bytes())

    sock, stream = login(port, context, mailbox, token)
    with sock:
        append_pipelined(sock, stream, appends())


# -- the naive append (two round trips per message) ---------------------------------------
def naive(port: int, world: World, connections: int, mailbox: str, count: int) -> float:
    import imapclient

    token = world.token()
    context = ssl.create_default_context(cafile=world.certs.ca_cert)
    inbox = [m for m in world.messages if m.folder == "INBOX"][:count]
    shares = [inbox[i::connections] for i in range(connections)]

    def run(share: list[Stored]) -> None:
        client = imapclient.IMAPClient("127.0.0.1", port, ssl_context=context)
        client.oauth2_login(mailbox, token)
        for message in share:
            client.append("INBOX", message.path.read_bytes(), message.flags,
                          message.internaldate)
        client.logout()

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


# -- migrator -----------------------------------------------------------------------------------
def write_config(directory: Path, world: World, port: int, mailbox: str,
                 connections: int) -> Path:
    source = Endpoint("imap", username="unused", password="env:BENCH_UNUSED")
    target = Endpoint("office365", port=port, username=mailbox, ca_file=world.certs.ca_cert,
                      connections=connections, oauth=OAuth(
                          world.oauth.authority, world.certs.ca_cert, client_id=APP,
                          client_secret="env:BENCH_APP_SECRET"))
    return Config(world.archive, {"bench": Account(source, target)}).write(
        directory / "bench.toml")


def delivered(server: Any, mailbox: str) -> int:
    """Messages in `mailbox`, over the folders it has (a small corpus leaves some out)."""
    count = 0
    for folder in server.folders(mailbox):
        with contextlib.suppress(FileNotFoundError):  # a parent that is only a directory
            count += len(server.list_messages(mailbox, folder))
    return count


def run_seconds(archive: Path, command: str) -> float:
    """The last run's own duration, from the manifest (no interpreter start, no imports)."""
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        started, finished = db.execute(
            "SELECT started_at, finished_at FROM runs WHERE command = ? ORDER BY id DESC "
            "LIMIT 1", (command,)).fetchone()
    return (datetime.datetime.fromisoformat(finished)
            - datetime.datetime.fromisoformat(started)).total_seconds()


def forget_pushes(archive: Path) -> None:
    """The next push starts from scratch (a new mailbox gets everything again)."""
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        db.execute("DELETE FROM pushes")
        db.commit()


@dataclass
class Result:
    delay: float
    what: str
    messages: int
    megabytes: float
    seconds: float
    wall: float | None = None
    rss: float | None = None


def measure(world: World, delay: float, connections: int, work: Path,
            naive_count: int) -> list[Result]:
    total = sum(m.size for m in world.messages) / 1e6
    results = []
    with fault_proxy(world.server.imaps_port, delay) as proxy:
        seconds = baseline(proxy.port, world, connections, world.mailbox())
        results.append(Result(delay, "baseline", len(world.messages), total, seconds))
        forget_pushes(world.archive)
        mailbox = world.mailbox()
        config = write_config(work, world, proxy.port, mailbox, connections)
        run = migrator("-c", config, "-q", "push", "bench",
                       env=migrator_env(BENCH_APP_SECRET=SECRET, BENCH_UNUSED="x"))
        if run.status != 0:
            raise RuntimeError(f"migrator push failed ({run.status}): {run.stderr}")
        arrived = delivered(world.server, mailbox)
        if arrived != len(world.messages):
            raise RuntimeError(f"push delivered {arrived} of {len(world.messages)} messages")
        results.append(Result(delay, "push", len(world.messages), total,
                              run_seconds(world.archive, "push"), run.seconds,
                              run.peak_rss_mb))
        if naive_count:
            inbox = [m for m in world.messages if m.folder == "INBOX"][:naive_count]
            seconds = naive(proxy.port, world, connections, world.mailbox(), naive_count)
            results.append(Result(delay, "naive append", len(inbox),
                                  sum(m.size for m in inbox) / 1e6, seconds))
    return results


def report(results: list[Result]) -> str:
    table = Table(["delay", "run", "msgs", "MB", "s (run)", "s (wall)", "msgs/s",
                   "msgs/s range", "MB/s", "peak RSS MB", "vs baseline"])
    groups: dict[tuple[float, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.delay, result.what), []).append(result)
    for (delay, what), runs in groups.items():
        seconds = statistics.median(r.seconds for r in runs)
        first = runs[0]
        rate = first.messages / seconds
        base = groups[(delay, "baseline")]
        base_rate = base[0].messages / statistics.median(r.seconds for r in base)
        wall = statistics.median(r.wall for r in runs) if first.wall is not None else None
        rss = max(r.rss for r in runs) if first.rss is not None else None
        rates = [r.messages / r.seconds for r in runs]
        spread = f"{min(rates):.0f}-{max(rates):.0f}" if len(runs) > 1 else ""
        table.add(f"{delay:g} ms", what, first.messages, first.megabytes, seconds,
                  "" if wall is None else wall, rate, spread, first.megabytes / seconds,
                  "" if rss is None else rss,
                  "" if what == "baseline" else f"{rate / base_rate:.2f}x")
    return table.render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="corpus size (default 3000)")
    parser.add_argument("--connections", type=int, default=4,
                        help="connections for migrator and the baseline (default 4, "
                             "migrator's default for office365)")
    parser.add_argument("--delays", default="0,25", help="added ms each way (default 0,25)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per delay")
    parser.add_argument("--naive", type=int, default=120,
                        help="messages for the two-round-trip append row (0: skip)")
    args = parser.parse_args(argv)
    delays = [float(value) for value in args.delays.split(",")]
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-push-")
    try:
        started = time.monotonic()
        with world(work, args.messages) as bench:
            total = sum(m.size for m in bench.messages)
            print(f"archived {len(bench.messages)} messages, {total / 1e6:.0f} MB "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            results = []
            for _ in range(args.repeat):
                for delay in delays:
                    results += measure(bench, delay, args.connections, work, args.naive)
                    print(f"  {delay:g} ms done", flush=True)
        print(report(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
