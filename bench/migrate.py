"""Benchmark `migrator migrate` (pull and push pipelined) against a raw pipelined APPEND.

    python -m bench.migrate [--messages 5000] [--delays 0,25] [--repeat 1] [--smoke]

Seeds the test-world source with the pull benchmark's mailbox (bench/pull.py: the corpus
plus one 30 MB message) and starts the Exchange look-alike. For each added delay (the
fault proxy in front of both servers, each way), each run into an empty archive and an
empty mailbox:

- raw APPEND: the push benchmark's baseline (bench/push.py: 4 raw TLS connections, XOAUTH2,
  LITERAL+ APPENDs 64 in flight, each message read from its own file) with the same
  messages into the same folders: the yardstick, as fast as the target takes mail;
- pull, then push: two migrator runs one after the other (the sum of their times);
- migrate --no-verify: pull and push at the same time;
- migrate: the same, then the comparison of archive and target (what users run).

Reported: seconds (`s (run)`: the runs' own durations from the manifest; `s (wall)`:
interpreter start included), migrator's CPU seconds (steadier than time on a busy machine),
msgs/s and MB/s end to end, peak RSS (the larger of the two processes for pull-then-push),
the speed-up over pull-then-push, and msgs/s (run) over the raw APPEND's, measured in the
same round. A second table gives the CPU seconds of everyone busy during each run (bench/cpu.py:
the program, both Dovecots, the proxy): on 2 cores half of that is a floor under the run's
wall time, set beside the time 0.8x of the raw APPEND allows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cpu
from bench import push as push_bench
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
from bench.pull import PASSWORD, USER, Mailbox, huge_message, seed
from bench.push import APP, FOLDERS, SECRET, Stored
from tests.world.configs import Account, Config, Endpoint, OAuth

CONNECTIONS = 4  # migrator's default for office365, and the raw APPEND's
BASELINE = "raw APPEND"


@dataclass
class World:
    certs: Any
    oauth: Any
    source: Any
    target: Any
    box: Mailbox
    raw: list[Stored]  # the same messages as files, for the raw APPEND
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
        box = seed(source, count, big)
        yield World(certs, oauth, source, target, box, as_files(directory / "raw", count, big))


def as_files(directory: Path, count: int, big: bool) -> list[Stored]:
    """The seeded messages (the same corpus, the same 30 MB one) one file each, with the
    target folder, system flags and INTERNALDATE the raw APPEND sends them with."""
    from tests.world.corpus import generate

    corpus = [(m.folder, m.raw, m.flags, m.internaldate)
              for m in generate(seed=20240601, count=count, stdlib=False)]
    if big:
        corpus.append(("INBOX", huge_message(), ("\\Seen",),
                       datetime.datetime.now(datetime.UTC)))
    directory.mkdir(parents=True)
    stored = []
    for number, (folder, raw, flags, when) in enumerate(corpus):
        path = directory / f"{number}.eml"
        path.write_bytes(raw)
        stored.append(Stored(path, len(raw), FOLDERS[folder],
                             tuple(f for f in flags if f.startswith("\\")), when))
    return stored


def write_config(directory: Path, bench: World, source_port: int, target_port: int,
                 mailbox: str) -> Path:
    source = Endpoint("imap", port=source_port, security="plain", username=USER,
                      password="env:BENCH_IMAP_PASSWORD")
    target = Endpoint("office365", port=target_port, username=mailbox,
                      ca_file=bench.certs.ca_cert, connections=CONNECTIONS, oauth=OAuth(
                          bench.oauth.authority, bench.certs.ca_cert, client_id=APP,
                          client_secret="env:BENCH_APP_SECRET"))
    return Config(directory / "archive", {USER: Account(source, target)}).write(
        directory / "bench.toml")


@dataclass
class Result:
    delay: float
    what: str
    seconds: float  # the runs' own durations (the manifest's runs table)
    wall: float | None = None
    rss: float | None = None
    cpu: float | None = None  # CPU seconds of migrator's process(es)
    everyone: dict[str, float] | None = None  # CPU seconds of each process busy meanwhile
    window: float = 0.0  # wall seconds over which `everyone` was counted


PLANS = {"pull, then push": [("pull",), ("push",)],
         "migrate --no-verify": [("migrate", "--no-verify")],
         "migrate": [("migrate",)]}


def measure(bench: World, delay: float, work: Path, smoke: bool = False,
            only: Sequence[str] = (), other: Path | None = None,
            wait: bool = True, reverse: bool = False) -> list[Result]:
    """One round at `delay`: the raw APPEND, then each run (`other`: `migrate` from that
    checkout of migrator too, for a before/after in the same round); `reverse`: the runs
    after the raw APPEND in the opposite order (rounds alternate, so that no run always
    follows the raw APPEND or another run)."""
    env = migrator_env(BENCH_IMAP_PASSWORD=PASSWORD, BENCH_APP_SECRET=SECRET)
    wait = wait and not smoke
    plans: dict[str, tuple[list[tuple[str, ...]], Path | None]] = {
        what: (commands, None) for what, commands in PLANS.items()
        if not only or what in only}
    if other is not None:
        plans[f"migrate ({other.name})"] = ([("migrate",)], other)
    if reverse:
        plans = dict(reversed(plans.items()))
    results = []
    with fault_proxy(bench.source.imap_port, delay) as source, \
            fault_proxy(bench.target.imaps_port, delay) as target:
        if wait:
            settle(work)
        raw = push_bench.World(bench.certs, bench.oauth, bench.target, work, bench.raw)
        mailbox = bench.mailbox()
        with counted(bench) as everyone:
            seconds = push_bench.baseline(target.port, raw, CONNECTIONS, mailbox)
        results.append(Result(delay, BASELINE, seconds, everyone=everyone.spent,
                              window=everyone.wall))
        for what, (commands, checkout) in plans.items():
            # a fresh directory each time, deleted only after the last round, and a disk at
            # its usual pace first: see bench.common.settle
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
            if wait:
                settle(work)
            mailbox = bench.mailbox()
            config = write_config(run_dir, bench, source.port, target.port, mailbox)
            seconds, wall, rss, cpu = 0.0, 0.0, 0.0, 0.0
            spent = Counted()
            for command in commands:
                with counted(bench, spent):
                    run = migrator("-c", config, "-q", command[0], USER, *command[1:],
                                   env=env if checkout is None else {
                                       **env, "PYTHONPATH": str(checkout)}, cwd=checkout)
                if run.status != 0:
                    raise RuntimeError(f"{what}: {command} failed ({run.status}): {run.stderr}")
                seconds += push_bench.run_seconds(run_dir / "archive", command[0])
                wall += run.seconds
                rss = max(rss, run.peak_rss_mb)
                cpu += run.cpu
            arrived = sum(len(bench.target.list_messages(mailbox, folder))
                          for folder in bench.target.folders(mailbox))
            if arrived != bench.box.messages:
                raise RuntimeError(f"{what}: {arrived} of {bench.box.messages} arrived")
            results.append(Result(delay, what, seconds, wall, rss, cpu, spent.spent,
                                  spent.wall))
    return results


@dataclass
class Counted:
    """CPU seconds of everyone (bench/cpu.py) over one or more runs, and their wall time."""

    spent: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0


@contextlib.contextmanager
def counted(bench: World, into: Counted | None = None) -> Iterator[Counted]:
    """Adds to `into` (a new one if None) what everyone spent during the block."""
    into = into if into is not None else Counted()
    servers = [("source Dovecot", bench.source.group), ("target Dovecot", bench.target.group)]
    before, started = cpu.Snapshot.take(servers), time.monotonic()
    yield into
    for name, seconds in cpu.Snapshot.take(servers).since(before).items():
        into.spent[name] = into.spent.get(name, 0.0) + seconds
    into.wall += time.monotonic() - started


def report(results: list[Result], box: Mailbox) -> str:
    table = Table(["delay", "run", "msgs", "MB", "s (run)", "s range", "s (wall)", "CPU s",
                   "msgs/s", "MB/s", "peak RSS MB", "vs pull+push", "vs raw APPEND", "range"])
    groups: dict[tuple[float, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.delay, result.what), []).append(result)
    for (delay, what), runs in groups.items():
        seconds = statistics.median(r.seconds for r in runs)
        serial = groups.get((delay, "pull, then push"))
        base = groups[(delay, BASELINE)]
        # each run against the raw APPEND of its own round (the machine moves between rounds)
        ratios = [b.seconds / r.seconds for r, b in zip(runs, base, strict=False)]
        spread = (f"{min(r.seconds for r in runs):.1f}-{max(r.seconds for r in runs):.1f}"
                  if len(runs) > 1 else "")
        walls = [r.wall for r in runs if r.wall is not None]
        rss = [r.rss for r in runs if r.rss is not None]
        cpu = [r.cpu for r in runs if r.cpu is not None]
        table.add(f"{delay:g} ms", what, box.messages, box.bytes / 1e6, seconds, spread,
                  statistics.median(walls) if walls else "",
                  statistics.median(cpu) if cpu else "", box.messages / seconds,
                  box.bytes / 1e6 / seconds, max(rss) if rss else "",
                  f"{statistics.median(r.seconds for r in serial) / seconds:.2f}x"
                  if serial and what not in ("pull, then push", BASELINE) else "",
                  f"{statistics.median(ratios):.2f}x" if what != BASELINE else "",
                  f"{min(ratios):.2f}-{max(ratios):.2f}"
                  if what != BASELINE and len(ratios) > 1 else "")
    return table.render() + "\n\n" + report_everyone(groups)


def report_everyone(groups: dict[tuple[float, str], list[Result]]) -> str:
    """The ceiling: everyone's CPU seconds (medians) against the time 0.8x allows. On two
    cores a run cannot take less wall time than half of everyone's CPU seconds; if that
    exceeds the raw APPEND's seconds / 0.8, only CPU cuts can reach 0.8x."""
    names = sorted({name for runs in groups.values() for r in runs for name in r.everyone or {}
                    if name != "machine (all users)"})
    table = Table(["delay", "run", *names, "everyone", "/ 2 cores", "wall", "0.8x budget",
                   "machine (all users)"])
    for (delay, what), runs in groups.items():
        counted_runs = [r for r in runs if r.everyone is not None]
        if not counted_runs:
            continue
        spent = {name: statistics.median((r.everyone or {}).get(name, 0.0)
                                         for r in counted_runs) for name in names}
        everyone = statistics.median(sum(v for k, v in (r.everyone or {}).items()
                                         if k != "machine (all users)") for r in counted_runs)
        budget = statistics.median(r.seconds for r in groups[(delay, BASELINE)]) / 0.8
        table.add(f"{delay:g} ms", what, *(spent[name] for name in names), everyone,
                  everyone / (os.cpu_count() or 1),
                  statistics.median(r.window for r in counted_runs), budget,
                  statistics.median((r.everyone or {}).get("machine (all users)", 0.0)
                                    for r in counted_runs))
    return ("CPU seconds of everyone busy during the runs (bench/cpu.py; medians):\n"
            + table.render())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.migrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument("--delays", default="0,25", help="added ms each way (default 0,25)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per delay")
    parser.add_argument("--only", action="append", choices=list(PLANS), default=[],
                        help="a run to measure besides the raw APPEND (repeatable; default: "
                             "all)")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT",
                        help="also measure `migrate` from another checkout of migrator (e.g. "
                             "`git worktree add /tmp/before main`), in the same rounds")
    parser.add_argument("--no-settle", action="store_true",
                        help="do not wait for file creation and the disk to settle before "
                             "each run (a shared machine that keeps deleting files)")
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
            for round_number in range(args.repeat):
                for delay in delays:
                    results += measure(bench, delay, work, args.smoke, args.only,
                                       args.compare and args.compare.resolve(),
                                       not args.no_settle, reverse=round_number % 2 == 1)
                    print(f"  {delay:g} ms done", flush=True)
        print(report(results, bench.box))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
