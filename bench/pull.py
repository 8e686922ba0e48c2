"""Benchmark `migrator pull` (IMAP) against the physical limit of a durable archive.

    python -m bench.pull [--messages 5000] [--connections 2] [--delays 0,25] [--repeat 1] [--smoke]

Seeds the test-world source with a deterministic corpus (heavy-tailed sizes, one 30 MB
message), then for each added delay (through the test world's fault proxy, each way):

- baseline: a minimal socket client, the same number of connections as migrator, each
  issuing one `UID FETCH 1:* (BODY.PEEK[])` per folder it was given (folders spread over
  the connections by size) and writing every message to its own file with fsync + rename;
- pull: `python -m migrator pull` into an empty archive (a real subprocess: wall time, peak
  RSS, and the run's own duration from the manifest's runs table);
- no-op: the same pull again, nothing to do.

Ratios are to the baseline's msgs/s over the same delay, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import shutil
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    SMOKE_HELP,
    DurableSink,
    Table,
    fault_proxy,
    machine,
    migrator,
    migrator_env,
    scratch,
    settle,
    source_server,
)
from bench.raw_imap import until
from tests.world.configs import Account, Config, Endpoint

USER, PASSWORD = "bench", "bench-secret"
BIG = 30 * 1024 * 1024


@dataclass
class Mailbox:
    folders: dict[str, int]  # name -> bytes
    messages: int
    bytes: int


def seed(server, count: int, big: bool = True) -> Mailbox:
    """The corpus (tests/world/corpus.py) plus (with `big`) one 30 MB message, into the
    source."""
    from tests.world.corpus import generate
    from tests.world.mailstore import SeedMessage

    corpus = generate(seed=20240601, count=count, stdlib=False)
    by_folder: dict[str, list] = {}
    for item in corpus:
        by_folder.setdefault(item.folder, []).append(item)
    if big:
        by_folder["INBOX"].append(SeedMessage(huge_message(), ("\\Seen",),
                                              datetime.datetime.now(datetime.UTC)))
    sizes = {}
    for folder, items in by_folder.items():
        server.seed(USER, folder, items)
        sizes[folder] = sum(len(item.raw) for item in items)
    return Mailbox(sizes, count + (1 if big else 0), sum(sizes.values()))


def huge_message() -> bytes:
    """The one 30 MB message of the benchmark mailbox."""
    attachment = b"A" * 76 + b"\r\n"
    return (b"From: big@example.org\r\nSubject: the 30 MB one\r\nMessage-ID: <big@bench>\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + attachment * (BIG // 78))


# -- the raw baseline -------------------------------------------------------------------------
def spread(folders: dict[str, int], connections: int) -> list[list[str]]:
    """Folders to connections, largest first onto the least loaded (bytes)."""
    plan: list[list[str]] = [[] for _ in range(connections)]
    load = [0] * connections
    for name, size in sorted(folders.items(), key=lambda item: -item[1]):
        index = load.index(min(load))
        plan[index].append(name)
        load[index] += size
    return plan


def baseline(port: int, plan: Sequence[Sequence[str]], sink: DurableSink,
             login: tuple[str, str] = (USER, PASSWORD)) -> float:
    errors: list[BaseException] = []

    def connection(folders: Sequence[str]) -> None:
        try:
            _fetch_all(port, folders, sink, login)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connection, args=(folders,)) for folders in plan]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


def _fetch_all(port: int, folders: Sequence[str], sink: DurableSink,
               login: tuple[str, str]) -> None:
    from imapclient import imap_utf7

    with socket.create_connection(("127.0.0.1", port)) as sock:
        stream = sock.makefile("rb")
        stream.readline()

        def command(tag: bytes, text: bytes) -> None:
            sock.sendall(tag + b" " + text + b"\r\n")
            until(stream, tag, on_literal=sink.write)  # each message body, to the sink

        command(b"a", b"LOGIN %s %s" % (login[0].encode(), login[1].encode()))
        for folder in folders:
            command(b"b", b'EXAMINE "' + imap_utf7.encode(folder) + b'"')
            command(b"c", b"UID FETCH 1:* (BODY.PEEK[])")
        command(b"d", b"LOGOUT")


# -- migrator ---------------------------------------------------------------------------------
def write_config(directory: Path, port: int, connections: int) -> Path:
    source = Endpoint("imap", port=port, security="plain", username=USER,
                      password="env:BENCH_IMAP_PASSWORD", connections=connections)
    return Config(directory / "archive", {USER: Account(source)}).write(directory / "bench.toml")


def run_seconds(archive: Path) -> float:
    """The last run's own duration, from the manifest (no interpreter start, no imports)."""
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        started, finished = db.execute(
            "SELECT started_at, finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return (datetime.datetime.fromisoformat(finished)
            - datetime.datetime.fromisoformat(started)).total_seconds()


def archived(archive: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
                                 ).fetchone()
    return int(count), int(size)


# -- the benchmark ----------------------------------------------------------------------------
@dataclass
class Result:
    delay: float
    what: str
    messages: int
    megabytes: float
    seconds: float
    wall: float | None = None
    rss: float | None = None


def measure(server, box: Mailbox, delay: float, connections: int, work: Path,
            smoke: bool = False) -> list[Result]:
    """One round at one delay. Nothing is deleted until the last round (each measurement
    writes into a fresh directory) and each timed part starts on a quiet disk: see
    `bench.common.settle` for how deletions and others' write-back skew file creation."""
    results = []
    with fault_proxy(server.imap_port, delay) as proxy:
        sink_dir = Path(tempfile.mkdtemp(prefix="baseline-", dir=work))
        sink = DurableSink(sink_dir)
        if not smoke:
            settle(work)
        seconds = baseline(proxy.port, spread(box.folders, connections), sink)
        results.append(Result(delay, "baseline", sink.messages, sink.bytes / 1e6, seconds))

        run_dir = Path(tempfile.mkdtemp(prefix="pull-", dir=work))
        if not smoke:
            settle(work)
        config = write_config(run_dir, proxy.port, connections)
        env = migrator_env(BENCH_IMAP_PASSWORD=PASSWORD)
        for what in ("pull", "no-op"):
            run = migrator("-c", config, "-q", "pull", USER, env=env)
            if run.status != 0:
                raise RuntimeError(f"migrator {what} failed ({run.status}): {run.stderr}")
            count, size = archived(run_dir / "archive")
            if what == "pull" and count != box.messages:
                raise RuntimeError(f"pull archived {count} of {box.messages} messages")
            results.append(Result(delay, what, count if what == "pull" else 0,
                                  size / 1e6 if what == "pull" else 0.0,
                                  run_seconds(run_dir / "archive"), run.seconds,
                                  run.peak_rss_mb))
    return results


def report(results: list[Result]) -> str:
    """Medians over the repeats; the msgs/s range shows how steady the machine was."""
    table = Table(["delay", "run", "msgs", "MB", "s (run)", "s (wall)", "msgs/s",
                   "msgs/s range", "MB/s", "peak RSS MB", "vs baseline"])
    groups: dict[tuple[float, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.delay, result.what), []).append(result)
    for (delay, what), runs in groups.items():
        seconds = statistics.median(r.seconds for r in runs)
        first = runs[0]
        rate = first.messages / seconds if first.messages else None
        rates = sorted(r.messages / r.seconds for r in runs if r.messages)
        spread = f"{rates[0]:,.0f}-{rates[-1]:,.0f}" if len(rates) > 1 else ""
        base = groups[(delay, "baseline")]
        base_rate = base[0].messages / statistics.median(r.seconds for r in base)
        ratio = f"{rate / base_rate:.2f}x" if rate and what != "baseline" else ""
        wall = statistics.median(r.wall for r in runs if r.wall is not None) \
            if first.wall is not None else None
        rss = max(r.rss for r in runs if r.rss is not None) if first.rss is not None else None
        table.add(f"{delay:g} ms", what, first.messages, first.megabytes, seconds,
                  "" if wall is None else wall, "" if rate is None else rate, spread,
                  "" if rate is None else first.megabytes / seconds,
                  "" if rss is None else rss, ratio)
    return table.render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pull", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument("--connections", type=int, default=2,
                        help="connections for migrator and the baseline (default 2, "
                             "migrator's default for IMAP)")
    parser.add_argument("--delays", default="0,25", help="added ms each way (default 0,25)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per delay")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    delays = [float(value) for value in args.delays.split(",")]
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-pull-")
    try:
        with source_server() as server:
            server.add_user(USER, PASSWORD)
            started = time.monotonic()
            box = seed(server, args.messages, big=not args.smoke)
            print(f"seeded {box.messages} messages, {box.bytes / 1e6:.0f} MB in "
                  f"{len(box.folders)} folders ({time.monotonic() - started:.0f} s)",
                  flush=True)
            warm = DurableSink(work / "warm-up")  # Dovecot builds its caches, files get cached
            baseline(server.imap_port, spread(box.folders, args.connections), warm)
            results = []
            for _ in range(args.repeat):
                for delay in delays:
                    results += measure(server, box, delay, args.connections, work,
                                       args.smoke)
                    print(f"  {delay:g} ms done", flush=True)
        print(report(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
