"""Benchmark `migrator pull` from POP3 against a raw RETR loop on the same maildrop.

    python -m bench.pop3 [--messages 5000] [--max-size 200000] [--repeat 3] [--delay 0] [--smoke]

Seeds the test-world source's INBOX with a deterministic corpus (tests/world/corpus.py),
then, `--repeat` times and alternating so that both see the same machine:

- baseline: one connection, `RETR n` for every message in turn, each reply read to its
  terminating "." line and thrown away (no parsing, no disk): the server's own pace;
- durable (with `--durable`, for context): the same loop writing each reply to its own file
  with fsync + rename, the least a durable archive must do;
- pull: `python -m migrator pull` into an empty archive (a real subprocess; its own duration
  from the manifest's runs table, and its wall time with interpreter start-up);
- no-op: the same pull again, with nothing new on the server.

The ratio is the baseline's time over the pull's: 1.00x means as fast as the raw loop.
`--delay` adds milliseconds each way through the test world's fault proxy.
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
import time
from collections.abc import Iterator, Sequence
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
from tests.world.configs import Account, Config, Endpoint

USER, PASSWORD = "bench", "bench-secret"
CHUNK = 1 << 18


@dataclass
class Maildrop:
    messages: int
    bytes: int


def seed(server, count: int, max_size: int | None) -> Maildrop:
    """`count` corpus messages, all in INBOX (POP3 sees nothing else)."""
    from tests.world.corpus import generate
    from tests.world.mailstore import SeedMessage

    corpus = generate(seed=20240607, count=count, max_size=max_size, stdlib=False)
    server.seed(USER, "INBOX", [SeedMessage(item.raw) for item in corpus])
    return Maildrop(len(corpus), sum(len(item.raw) for item in corpus))


# -- the raw baseline -------------------------------------------------------------------------
class RawPop3:
    """A minimal POP3 client: one buffer, C-level searches, nothing kept."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = bytearray()
        self.line()  # greeting

    def _fill(self) -> None:
        data = self.sock.recv(CHUNK)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        if not line.startswith(b"+OK"):
            raise RuntimeError(line.decode(errors="replace"))
        return line

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def body(self, keep: bool) -> bytes | int:
        """Read up to the terminating line; the bytes (still dot-stuffed) or just their size."""
        if self.buffer.startswith(b".\r\n"):
            del self.buffer[:3]
            return b"" if keep else 0
        start = 0
        while (end := self.buffer.find(b"\r\n.\r\n", start)) < 0:
            start = max(0, len(self.buffer) - 4)
            self._fill()
        data = bytes(self.buffer[:end + 2]) if keep else end + 2
        del self.buffer[:end + 5]
        return data

    def close(self) -> None:
        self.command("QUIT")
        self.sock.close()


def baseline(port: int, sink: DurableSink | None = None) -> tuple[int, float]:
    """(messages, seconds) for connect, login, RETR 1..n, QUIT; each reply read and thrown
    away, or with a `sink` written to its own file (fsync + rename)."""
    started = time.monotonic()
    client = RawPop3(port)
    client.command(f"USER {USER}")
    client.command(f"PASS {PASSWORD}")
    count = int(client.command("STAT").split()[1])
    for number in range(1, count + 1):
        client.command(f"RETR {number}")
        data = client.body(keep=sink is not None)
        if sink is not None:
            assert isinstance(data, bytes)
            sink.write(data)
    client.close()
    return count, time.monotonic() - started


# -- migrator ---------------------------------------------------------------------------------
def write_config(directory: Path, port: int) -> Path:
    source = Endpoint("pop3", port=port, security="plain", username=USER,
                      password="env:BENCH_POP3_PASSWORD")
    return Config(directory / "archive", {USER: Account(source)}).write(directory / "bench.toml")


def last_run(archive: Path) -> tuple[float, str]:
    """The last run's own duration (no interpreter start, no imports) and its counts."""
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        started, finished, counts = db.execute(
            "SELECT started_at, finished_at, counts FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    seconds = (datetime.datetime.fromisoformat(finished)
               - datetime.datetime.fromisoformat(started)).total_seconds()
    return seconds, counts


def archived(archive: Path) -> int:
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


@dataclass
class Result:
    what: str
    seconds: float
    wall: float | None = None
    rss: float | None = None


def measure(port: int, box: Maildrop, work: Path, durable: bool,
            smoke: bool = False) -> Iterator[Result]:
    """One round. Its files are left in place (a fresh directory per round) and removed only
    after the last measurement, and the pull starts once creating files runs at its usual
    speed and the disk is quiet (`bench.common.settle`): after thousands of
    files were deleted, file creation here is several times slower for minutes, which would
    charge a clean-up (or the seeding's write-back) to the pull."""
    count, seconds = baseline(port)
    if count != box.messages:
        raise RuntimeError(f"the baseline saw {count} of {box.messages} messages")
    yield Result("baseline", seconds)
    if durable:
        sink = DurableSink(Path(tempfile.mkdtemp(prefix="durable-", dir=work)))
        yield Result("durable", baseline(port, sink)[1])
    run_dir = Path(tempfile.mkdtemp(prefix="pull-", dir=work))
    if not smoke:
        settle(work)
    config = write_config(run_dir, port)
    env = migrator_env(BENCH_POP3_PASSWORD=PASSWORD)
    for what in ("pull", "no-op"):
        run = migrator("-c", config, "-q", "pull", USER, env=env)
        if run.status != 0:
            raise RuntimeError(f"migrator {what} failed ({run.status}): {run.stderr}")
        if archived(run_dir / "archive") != box.messages:
            raise RuntimeError(f"{what}: archived {archived(run_dir / 'archive')} "
                               f"of {box.messages}")
        seconds, _ = last_run(run_dir / "archive")
        yield Result(what, seconds, run.seconds, run.peak_rss_mb)


def report(results: list[Result], box: Maildrop) -> str:
    table = Table(["run", "msgs", "MB", "s (run)", "s range", "s (wall)", "msgs/s", "MB/s",
                   "peak RSS MB", "vs baseline"])
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.what, []).append(result)
    base = statistics.median(r.seconds for r in groups["baseline"])
    for what, runs in groups.items():
        seconds = statistics.median(r.seconds for r in runs)
        spread = f"{min(r.seconds for r in runs):.2f}-{max(r.seconds for r in runs):.2f}"
        moved = what != "no-op"
        walls = [r.wall for r in runs if r.wall is not None]
        rss = [r.rss for r in runs if r.rss is not None]
        table.add(what, box.messages if moved else 0, box.bytes / 1e6 if moved else 0.0,
                  seconds, spread, statistics.median(walls) if walls else "",
                  box.messages / seconds if moved else "",
                  box.bytes / 1e6 / seconds if moved else "", max(rss) if rss else "",
                  f"{base / seconds:.2f}x" if what in ("pull", "durable") else "")
    return table.render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pop3", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="maildrop size (5000)")
    parser.add_argument("--max-size", type=int, default=200_000,
                        help="largest message in bytes (default 200000; 0: the corpus's "
                             "own heavy tail, up to 30 MB)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements (default 3)")
    parser.add_argument("--delay", type=float, default=0.0, help="added ms each way")
    parser.add_argument("--archive-dir", type=Path, default=None,
                        help="where the archives go (default: the system temp dir); e.g. a "
                             "tmpfs to see migrator's own cost without the disk's")
    parser.add_argument("--durable", action="store_true",
                        help="also time the raw loop writing each message to its own file "
                             "(fsync + rename), for context")
    parser.add_argument("--keep", action="store_true",
                        help="leave the archives in place: on a filesystem without a journal, "
                             "deleting thousands of files slows file creation for minutes, "
                             "which a benchmark run soon after would measure")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    work = (Path(tempfile.mkdtemp(prefix="migrator-bench-pop3-", dir=args.archive_dir))
            if args.archive_dir else scratch("migrator-bench-pop3-"))
    try:
        with source_server() as server:
            server.add_user(USER, PASSWORD)
            started = time.monotonic()
            box = seed(server, args.messages, args.max_size or None)
            print(f"seeded {box.messages} messages, {box.bytes / 1e6:.0f} MB "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            with contextlib.ExitStack() as stack:
                port = server.pop3_port
                if args.delay:
                    port = stack.enter_context(fault_proxy(port, args.delay)).port
                baseline(port)  # warm-up: Dovecot builds its caches, files get cached
                results: list[Result] = []
                for round_number in range(1, args.repeat + 1):
                    measured = list(measure(port, box, work, args.durable, args.smoke))
                    results += measured
                    print(f"  round {round_number}: " + ", ".join(
                        f"{r.what} {r.seconds:.2f} s" for r in measured), flush=True)
        print(report(results, box))
    finally:
        if args.keep:
            print(f"archives kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
