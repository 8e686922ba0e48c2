"""Benchmark `migrator migrate` (pull and push pipelined) against pull followed by push.

    python -m bench.migrate [--messages 5000] [--delays 0,25] [--repeat 1] [--smoke]

Seeds the test-world source with the pull benchmark's mailbox (bench/pull.py: the corpus
plus one 30 MB message) and starts the Exchange look-alike. For each added delay (the
fault proxy in front of both servers, each way), each run into an empty archive and an
empty mailbox, as real subprocesses:

- pull, then push: two runs one after the other (the sum of their wall times);
- migrate --no-verify: pull and push at the same time;
- migrate: the same, then the comparison of archive and target (what users run).

Reported: wall seconds (interpreter start included), msgs/s and MB/s end to end, peak RSS
(the larger of the two processes for pull-then-push), and the speed-up over pull-then-push.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    SMOKE_HELP,
    Table,
    fault_proxy,
    machine,
    migrator,
    migrator_env,
    scratch,
    settle,
)
from bench.pull import PASSWORD, USER, Mailbox, seed
from tests.world.configs import Account, Config, Endpoint, OAuth

APP, SECRET = "bench-app", "bench-app-secret"


@dataclass
class World:
    certs: Any
    oauth: Any
    source: Any
    target: Any
    box: Mailbox
    users: int = 0

    def mailbox(self) -> str:
        self.users += 1
        name = f"migrate{self.users}@contoso.test"
        self.target.add_user(name)
        self.oauth.grant(APP, name)
        return name


@contextlib.contextmanager
def world(directory: Path, count: int, big: bool = True) -> Iterator[World]:
    from tests.world.certs import make_certs
    from tests.world.dovecot import Office365Server, SourceServer
    from tests.world.oauth import OAuthService

    certs = make_certs(str(directory / "certs"))
    with OAuthService(certs) as oauth, SourceServer(certs) as source, \
            Office365Server(certs, oauth.introspection_url, max_mail_size="100M") as target:
        oauth.add_client(APP, SECRET)
        source.add_user(USER, PASSWORD)
        yield World(certs, oauth, source, target, seed(source, count, big))


def write_config(directory: Path, bench: World, source_port: int, target_port: int,
                 mailbox: str) -> Path:
    source = Endpoint("imap", port=source_port, security="plain", username=USER,
                      password="env:BENCH_IMAP_PASSWORD")
    target = Endpoint("office365", port=target_port, username=mailbox,
                      ca_file=bench.certs.ca_cert, oauth=OAuth(
                          bench.oauth.authority, bench.certs.ca_cert, client_id=APP,
                          client_secret="env:BENCH_APP_SECRET"))
    return Config(directory / "archive", {USER: Account(source, target)}).write(
        directory / "bench.toml")


@dataclass
class Result:
    delay: float
    what: str
    seconds: float
    rss: float


def measure(bench: World, delay: float, work: Path, smoke: bool = False) -> list[Result]:
    env = migrator_env(BENCH_IMAP_PASSWORD=PASSWORD, BENCH_APP_SECRET=SECRET)
    plans = {"pull, then push": [("pull",), ("push",)],
             "migrate --no-verify": [("migrate", "--no-verify")],
             "migrate": [("migrate",)]}
    results = []
    with fault_proxy(bench.source.imap_port, delay) as source, \
            fault_proxy(bench.target.imaps_port, delay) as target:
        for what, commands in plans.items():
            # a fresh directory each time, deleted only after the last round, and a disk at
            # its usual pace first: see bench.common.settle
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
            if not smoke:
                settle(work)
            mailbox = bench.mailbox()
            config = write_config(run_dir, bench, source.port, target.port, mailbox)
            seconds, rss = 0.0, 0.0
            for command in commands:
                run = migrator("-c", config, "-q", command[0], USER, *command[1:], env=env)
                if run.status != 0:
                    raise RuntimeError(f"{what}: {command} failed ({run.status}): {run.stderr}")
                seconds += run.seconds
                rss = max(rss, run.peak_rss_mb)
            arrived = sum(len(bench.target.list_messages(mailbox, folder))
                          for folder in bench.target.folders(mailbox))
            if arrived != bench.box.messages:
                raise RuntimeError(f"{what}: {arrived} of {bench.box.messages} arrived")
            results.append(Result(delay, what, seconds, rss))
    return results


def report(results: list[Result], box: Mailbox) -> str:
    table = Table(["delay", "run", "msgs", "MB", "s (wall)", "s range", "msgs/s", "MB/s",
                   "peak RSS MB", "vs pull+push"])
    groups: dict[tuple[float, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.delay, result.what), []).append(result)
    for (delay, what), runs in groups.items():
        seconds = statistics.median(r.seconds for r in runs)
        serial = statistics.median(r.seconds for r in groups[(delay, "pull, then push")])
        spread = (f"{min(r.seconds for r in runs):.1f}-{max(r.seconds for r in runs):.1f}"
                  if len(runs) > 1 else "")
        table.add(f"{delay:g} ms", what, box.messages, box.bytes / 1e6, seconds, spread,
                  box.messages / seconds, box.bytes / 1e6 / seconds, max(r.rss for r in runs),
                  "" if what == "pull, then push" else f"{serial / seconds:.2f}x faster")
    return table.render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.migrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument("--delays", default="0,25", help="added ms each way (default 0,25)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per delay")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    delays = [float(value) for value in args.delays.split(",")]
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-migrate-")
    try:
        started = time.monotonic()
        with world(work, args.messages, big=not args.smoke) as bench:
            print(f"seeded {bench.box.messages} messages, {bench.box.bytes / 1e6:.0f} MB "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            results = []
            for _ in range(args.repeat):
                for delay in delays:
                    results += measure(bench, delay, work, args.smoke)
                    print(f"  {delay:g} ms done", flush=True)
        print(report(results, bench.box))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
