"""Benchmark one large mailbox: how pull, no-op runs, the manifest, push and verify grow with
messages and folders.

    python -m bench.large [--runs 10000x50,50000x50,100000x50,100000x5] [--push-max N]
                          [--no-wait] [--smoke]

For each run MESSAGESxFOLDERS a mailbox of the test-world source is seeded straight into its
Maildir (tests/world/maildir_seed.py: fast, no APPEND) with the corpus (tests/world/corpus.py)
capped at 8 KB a message (4.7 KB on average), spread evenly over the folders, and measured:

- baseline: bench.pull's raw durable fetch (2 connections, one `UID FETCH 1:* BODY.PEEK[]`
  per folder, a file per message with fsync + rename), after one untimed pass that lets
  Dovecot fill its caches;
- pull: `python -m migrator pull` into an empty archive (a real subprocess: the run's own
  seconds from the manifest, wall seconds, peak RSS from /proc/PID/status VmHWM);
- no-op pull and no-op backup: the same again, nothing to do;
- manifest: bytes of manifest.sqlite (and its WAL, after a checkpoint) per message;
- push: `migrator push` to the Exchange look-alike (Dovecot, XOAUTH2), into an empty mailbox;
- no-op push: the same again: planning, the re-check of every target folder, nothing sent;
- verify: `migrator verify`, every message looked for at the target.

Ratios are to the baseline measured in the same run. Nothing is deleted until the end (see
bench.common.settle).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    SMOKE_HELP,
    DurableSink,
    Table,
    machine,
    migrator,
    migrator_env,
    scratch,
    settle,
)
from bench.pull import baseline, run_seconds, spread
from tests.world.configs import Account, Config, Endpoint, OAuth

PASSWORD = "bench-secret"
APP, SECRET = "bench-app", "bench-app-secret"
MAX_SIZE = 8000  # corpus cap: text and attachment 4 KB each at most
CORPUS_FOLDERS = ("INBOX", "Sent", "Drafts", "Archive.2019", "Reisen.Überblick")
CONNECTIONS = 2


@dataclass(frozen=True)
class Scale:
    messages: int
    folders: int

    @property
    def user(self) -> str:
        return f"large{self.messages}x{self.folders}"

    def folder_names(self) -> list[str]:
        """The corpus's folders first (INBOX, role folders, a non-ASCII one), then
        `Projects.Pnn` up to `folders`."""
        names = list(CORPUS_FOLDERS[:self.folders])
        names += [f"Projects.P{n:02d}" for n in range(self.folders - len(names))]
        return names


@dataclass
class Measured:
    """One step of one scale: seconds (the run's own, else wall), wall, peak RSS, CPU."""

    seconds: float
    wall: float
    rss: float
    cpu: float = 0.0


@dataclass
class Outcome:
    scale: Scale
    megabytes: float = 0.0
    steps: dict[str, Measured] = field(default_factory=dict)
    manifest_bytes: int = 0


def seed(server: Any, scale: Scale) -> int:
    """The corpus, round robin over the folders, straight into the Maildir; total bytes."""
    from tests.world.corpus import iterate

    names = scale.folder_names()
    total = [0]

    def placed() -> Iterator[tuple[str, Any]]:
        for index, message in enumerate(iterate(seed=20240601, count=scale.messages,
                                                max_size=MAX_SIZE)):
            total[0] += len(message.raw)
            yield names[index % len(names)], message

    server.add_user(scale.user, PASSWORD)
    counts = server.seed_mailbox(scale.user, placed())
    if sum(counts.values()) != scale.messages:
        raise RuntimeError(f"seeded {sum(counts.values())} of {scale.messages}")
    return total[0]


class _Discard(DurableSink):
    """Counts what the warm-up pass reads, writes nothing."""

    def write(self, data: bytes) -> None:
        self.messages += 1


@contextlib.contextmanager
def world(directory: Path) -> Iterator[tuple[Any, Any, Any, Any]]:
    """(certs, identity service, source Dovecot, Exchange look-alike), stopped afterwards."""
    from tests.world.certs import make_certs
    from tests.world.dovecot import Office365Server, SourceServer
    from tests.world.oauth import OAuthService

    certs = make_certs(str(directory / "certs"))
    with OAuthService(certs) as oauth, SourceServer(certs) as source, \
            Office365Server(certs, oauth.introspection_url, max_mail_size="100M") as target:
        oauth.add_client(APP, SECRET)
        yield certs, oauth, source, target


def write_config(directory: Path, scale: Scale, world: tuple[Any, Any, Any, Any],
                 mailbox: str) -> Path:
    certs, oauth, source, target = world
    pull_from = Endpoint("imap", port=source.imap_port, security="plain", username=scale.user,
                         password="env:BENCH_IMAP_PASSWORD", connections=CONNECTIONS)
    push_to = Endpoint("office365", port=target.imaps_port, username=mailbox,
                       ca_file=certs.ca_cert, oauth=OAuth(
                           oauth.authority, certs.ca_cert, client_id=APP,
                           client_secret="env:BENCH_APP_SECRET"))
    return Config(directory / "archive", {scale.user: Account(pull_from, push_to)}).write(
        directory / "bench.toml")


def manifest_size(archive: Path) -> int:
    """manifest.sqlite plus its WAL after a checkpoint (what the archive keeps for good)."""
    path = archive / "manifest.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def measure(scale: Scale, world: tuple[Any, Any, Any, Any], work: Path, push: bool,
            wait: bool) -> Outcome:
    _, oauth, source, target = world
    outcome = Outcome(scale)
    started = time.monotonic()
    outcome.megabytes = seed(source, scale) / 1e6
    print(f"{scale.user}: seeded {scale.messages} messages, {outcome.megabytes:.0f} MB in "
          f"{scale.folders} folders ({time.monotonic() - started:.0f} s)", flush=True)
    plan = spread({name: 1 for name in scale.folder_names()}, CONNECTIONS)
    login = (scale.user, PASSWORD)
    baseline(source.imap_port, plan, _Discard(work / "discard"), login)  # warm Dovecot up
    sink = DurableSink(Path(tempfile.mkdtemp(prefix="baseline-", dir=work)))
    if wait:
        settle(work)
    seconds = baseline(source.imap_port, plan, sink, login)
    if sink.messages != scale.messages:
        raise RuntimeError(f"baseline fetched {sink.messages} of {scale.messages}")
    outcome.steps["baseline"] = Measured(seconds, seconds, 0.0)

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    mailbox = f"{scale.user}@contoso.test"
    target.add_user(mailbox)
    oauth.grant(APP, mailbox)
    config = write_config(run_dir, scale, world, mailbox)
    archive = run_dir / "archive"
    env = migrator_env(BENCH_IMAP_PASSWORD=PASSWORD, BENCH_APP_SECRET=SECRET)
    if wait:
        settle(work)
    steps = [("pull", "pull", ("pull",)), ("no-op pull", "pull", ("pull",)),
             ("no-op backup", "", ("backup",))]
    if push:
        steps += [("push", "push", ("push",)), ("no-op push", "push", ("push",)),
                  ("verify", "", ("verify",))]
    for what, command, args in steps:
        run = migrator("-c", config, "-q", *args, scale.user, env=env)
        if run.status != 0:
            raise RuntimeError(f"{scale.user}: {what} failed ({run.status}): {run.stderr}")
        own = run_seconds_of(archive, command) if command else run.seconds
        outcome.steps[what] = Measured(own, run.seconds, run.peak_rss_mb, run.cpu)
        print(f"  {what}: {own:.2f} s (wall {run.seconds:.2f} s, CPU {run.cpu:.2f} s), "
              f"peak RSS {run.peak_rss_mb:.0f} MB", flush=True)
        if what == "pull":
            outcome.manifest_bytes = manifest_size(archive)
    return outcome


def run_seconds_of(archive: Path, command: str) -> float:
    if command == "pull":
        return run_seconds(archive)
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        row = db.execute("SELECT julianday(finished_at) - julianday(started_at) FROM runs "
                         "WHERE command = ? ORDER BY id DESC LIMIT 1", (command,)).fetchone()
    return float(row[0]) * 86400.0


def report(outcomes: list[Outcome]) -> str:
    pull = Table(["msgs", "folders", "MB", "baseline s", "pull s", "pull msgs/s",
                  "vs baseline", "pull RSS MB", "no-op s (run/wall/CPU)",
                  "backup no-op s (wall/CPU)", "no-op RSS MB", "manifest B/msg"])
    push = Table(["msgs", "folders", "push s", "push msgs/s", "push RSS MB",
                  "no-op push s (run/wall/CPU)", "no-op push RSS MB", "verify s (wall/CPU)",
                  "verify RSS MB"])
    for outcome in outcomes:
        scale, steps = outcome.scale, outcome.steps
        base, pulled = steps["baseline"], steps["pull"]
        noop, backup = steps["no-op pull"], steps["no-op backup"]
        pull.add(scale.messages, scale.folders, outcome.megabytes, base.seconds,
                 pulled.seconds, scale.messages / pulled.seconds,
                 f"{base.seconds / pulled.seconds:.2f}x", pulled.rss,
                 f"{noop.seconds:.2f} / {noop.wall:.2f} / {noop.cpu:.2f}",
                 f"{backup.wall:.2f} / {backup.cpu:.2f}",
                 max(noop.rss, backup.rss), round(outcome.manifest_bytes / scale.messages))
        if "push" in steps:
            pushed, again, verify = steps["push"], steps["no-op push"], steps["verify"]
            push.add(scale.messages, scale.folders, pushed.seconds,
                     scale.messages / pushed.seconds, pushed.rss,
                     f"{again.seconds:.2f} / {again.wall:.2f} / {again.cpu:.2f}", again.rss,
                     f"{verify.wall:.2f} / {verify.cpu:.2f}", verify.rss)
    return pull.render() + ("\n\n" + push.render() if push.rows else "")


def parse_runs(text: str) -> list[Scale]:
    scales = []
    for item in text.split(","):
        messages, _, folders = item.partition("x")
        scales.append(Scale(int(messages), int(folders or 50)))
    return scales


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="10000x50,50000x50,100000x50,100000x5",
                        help="MESSAGESxFOLDERS, comma-separated (default "
                             "10000x50,50000x50,100000x50,100000x5)")
    parser.add_argument("--messages", type=int, help="one run of this many messages "
                        "(with --folders; instead of --runs)")
    parser.add_argument("--folders", type=int, default=50, help="folders for --messages")
    parser.add_argument("--push-max", type=int, default=10**9,
                        help="push and verify only runs of at most this many messages")
    parser.add_argument("--no-wait", action="store_true",
                        help="no waiting for a quiet disk (bench.common.settle): on a shared "
                             "machine where others keep deleting files it may wait minutes "
                             "per step; the figures then include their disk traffic")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    scales = ([Scale(args.messages, args.folders)] if args.messages
              else parse_runs(args.runs))
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-large-")
    try:
        with world(work) as servers:
            outcomes = [measure(scale, servers, work, scale.messages <= args.push_max,
                                not (args.smoke or args.no_wait)) for scale in scales]
        print(report(outcomes), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
