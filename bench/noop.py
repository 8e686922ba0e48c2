"""Benchmark re-runs with nothing new: `backup`, `migrate` and `verify` on a finished mailbox.

    python -m bench.noop [--messages 5000] [--delays 0,25] [--repeat 3] [--smoke]

Seeds the migrate benchmark's world (bench/migrate.py: the Dovecot source with the corpus,
the Exchange look-alike as target), migrates the mailbox once per added delay (the fault
proxy in front of both servers, each way; not timed), then times, as real subprocesses
(interpreter start included), the runs a batch re-run (the delta pass before cut-over) makes:

- backup: `migrator backup` again, nothing new at the source;
- migrate: `migrator migrate` again (pull, push, and the verify at its end);
- verify: `migrator verify`, and `verify --full` (the deep compare of every folder);
- then one new message at the source (APPENDed to INBOX directly, not timed) and
  `migrate` again: a delta pass's cost for one message in a big mailbox (pull it, push it,
  verify the folder it changed), beside mbsync fetching the same message; and `backup`
  fetching it into an archive of its own (a nightly backup's usual run).

Wall seconds are medians over the repeats; CPU seconds (user + system of the process) are
given too, being steadier than wall time on a loaded machine. Beside them, in the same run
and through the same proxy, the baseline a no-op could hope for: mbsync's no-op (Debian
package `isync`; the same source mailbox synced once into a Maildir, then again) where
mbsync is installed, and always a raw STATUS round trip (connect, LOGIN, one pipelined
STATUS per folder, LOGOUT) from a minimal socket client.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import SMOKE_HELP, Table, fault_proxy, machine, migrator, migrator_env, scratch
from bench.migrate import SECRET, World, world, write_config
from bench.pull import PASSWORD, USER
from bench.raw_imap import until

RUNS = {"backup": ("backup",), "migrate": ("migrate",), "verify": ("verify",),
        "verify --full": ("verify", "--full")}


@dataclass
class Result:
    delay: float
    what: str
    seconds: float
    rss: float | None = None
    cpu: float | None = None  # user + system seconds of the process (steadier under load)


def child_cpu() -> float:
    """CPU seconds of every child reaped so far (a subprocess's, taken as a difference)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def status_round_trip(port: int, folders: Sequence[str]) -> float:
    """Connect, LOGIN, STATUS of every folder pipelined, LOGOUT: a no-op's least work."""
    from imapclient import imap_utf7

    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        stream = sock.makefile("rb")
        stream.readline()
        sock.sendall(b"a LOGIN %s %s\r\n" % (USER.encode(), PASSWORD.encode()))
        until(stream, b"a")
        tags = [b"s%d" % number for number in range(len(folders))]
        sock.sendall(b"".join(tag + b' STATUS "' + imap_utf7.encode(folder)
                              + b'" (MESSAGES UIDNEXT UIDVALIDITY)\r\n'
                              for tag, folder in zip(tags, folders, strict=True)))
        for tag in tags:
            until(stream, tag)
        sock.sendall(b"z LOGOUT\r\n")
        until(stream, b"z")
    return time.monotonic() - started


def mbsync_config(directory: Path, port: int) -> Path:
    (directory / "maildir").mkdir()
    config = directory / "mbsyncrc"
    config.write_text(
        f"IMAPAccount bench\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n"
        "SSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore far\nAccount bench\n\n"
        f"MaildirStore near\nPath {directory}/maildir/\nInbox {directory}/maildir/INBOX\n"
        "SubFolders Verbatim\n\n"
        "Channel bench\nFar :far:\nNear :near:\nPatterns *\nCreate Near\nSync Pull\n"
        f"SyncState *\n")
    return config


def mbsync(config: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(["mbsync", "-q", "-c", str(config), "-a"], timeout=3600,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"mbsync failed ({done.returncode}): {done.stderr}")
    return time.monotonic() - started


def deliver_one(bench: World, number: int) -> None:
    """One new message in the source's INBOX, as mail arriving between two passes."""
    import imaplib

    message = (f"From: sender@example.com\r\nTo: {USER}@example.com\r\n"
               f"Subject: arrived between passes {number}\r\n"
               f"Message-ID: <delta-{number}-{time.time_ns()}@bench.example>\r\n"
               "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nnew mail\r\n")
    client = imaplib.IMAP4("127.0.0.1", bench.source.imap_port)
    try:
        client.login(USER, PASSWORD)
        client.append("INBOX", None, None, message.encode())
    finally:
        client.logout()


def measure(bench: World, delay: float, work: Path, repeat: int) -> list[Result]:
    env = migrator_env(BENCH_IMAP_PASSWORD=PASSWORD, BENCH_APP_SECRET=SECRET)
    results = []
    with fault_proxy(bench.source.imap_port, delay) as source, \
            fault_proxy(bench.target.imaps_port, delay) as target:
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
        config = write_config(run_dir, bench, source.port, target.port, bench.mailbox())
        first = migrator("-c", config, "-q", "migrate", USER, env=env)
        if first.status != 0:
            raise RuntimeError(f"first migrate failed ({first.status}): {first.stderr}")
        results.append(Result(delay, "first migrate (not a no-op)", first.seconds,
                              first.peak_rss_mb))
        if shutil.which("mbsync"):
            mbsync_dir = Path(tempfile.mkdtemp(prefix="mbsync-", dir=work))
            mbsync_rc = mbsync_config(mbsync_dir, source.port)
            mbsync(mbsync_rc)  # the first sync copies everything: not timed
        else:
            mbsync_rc = None
            print("  mbsync is not installed (Debian: apt-get install isync): its no-op is "
                  "left out; the raw STATUS round trip is the baseline", flush=True)
        backup_dir = Path(tempfile.mkdtemp(prefix="backup-", dir=work))
        backup_config = write_config(backup_dir, bench, source.port, target.port,
                                     bench.mailbox())
        if migrator("-c", backup_config, "-q", "backup", USER, env=env).status != 0:
            raise RuntimeError("the first backup into an archive of its own failed")
        folders = sorted(bench.box.folders)
        for _ in range(repeat):
            if mbsync_rc is not None:
                cpu = child_cpu()
                seconds = mbsync(mbsync_rc)
                results.append(Result(delay, "mbsync no-op", seconds, cpu=child_cpu() - cpu))
            results.append(Result(delay, "raw STATUS round trip",
                                  status_round_trip(source.port, folders)))
            for what, command in RUNS.items():
                cpu = child_cpu()
                run = migrator("-c", config, "-q", command[0], USER, *command[1:], env=env)
                if run.status != 0:
                    raise RuntimeError(f"{what} failed ({run.status}): {run.stderr}")
                results.append(Result(delay, what, run.seconds, run.peak_rss_mb,
                                      child_cpu() - cpu))
            deliver_one(bench, len(results))
            if mbsync_rc is not None:
                cpu = child_cpu()
                seconds = mbsync(mbsync_rc)
                results.append(Result(delay, "mbsync, 1 new message", seconds,
                                      cpu=child_cpu() - cpu))
            cpu = child_cpu()
            run = migrator("-c", config, "-q", "--json", "migrate", USER, env=env)
            summary = json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout else {}
            if run.status != 0 or (summary.get("pull_fetched"), summary.get("push_pushed")) \
                    != (1, 1):
                raise RuntimeError(f"delta migrate failed ({run.status}): {run.stderr}")
            results.append(Result(delay, "migrate, 1 new message", run.seconds,
                                  run.peak_rss_mb, child_cpu() - cpu))
            cpu = child_cpu()
            run = migrator("-c", backup_config, "-q", "--json", "backup", USER, env=env)
            summary = json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout else {}
            if run.status != 0 or [a.get("fetched") for a in summary.get("accounts", [])] != [1]:
                raise RuntimeError(f"delta backup failed ({run.status}): {run.stderr}")
            results.append(Result(delay, "backup, 1 new message", run.seconds,
                                  run.peak_rss_mb, child_cpu() - cpu))
    return results


def report(results: list[Result]) -> str:
    table = Table(["delay", "run", "s (wall)", "s range", "CPU s", "peak RSS MB", "vs mbsync",
                   "vs STATUS"])
    groups: dict[tuple[float, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.delay, result.what), []).append(result)

    def median(delay: float, what: str) -> float | None:
        runs = groups.get((delay, what))
        return statistics.median(r.seconds for r in runs) if runs else None

    for (delay, what), runs in groups.items():
        seconds = statistics.median(r.seconds for r in runs)
        spread = (f"{min(r.seconds for r in runs):.2f}-{max(r.seconds for r in runs):.2f}"
                  if len(runs) > 1 else "")
        rss = max((r.rss for r in runs if r.rss is not None), default=None)
        cpus = [r.cpu for r in runs if r.cpu is not None]
        ratios = []
        for base in ("mbsync no-op", "raw STATUS round trip"):
            if what.endswith(", 1 new message") and base == "mbsync no-op":
                base = "mbsync, 1 new message"
            reference = median(delay, base)
            ratios.append(f"{seconds / reference:.1f}x" if reference and what != base
                          and not what.startswith("first") else "")
        table.add(f"{delay:g} ms", what, seconds, spread,
                  statistics.median(cpus) if cpus else "", "" if rss is None else rss, *ratios)
    return table.render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument("--delays", default="0,25", help="added ms each way (default 0,25)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per delay")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    delays = [float(value) for value in args.delays.split(",")]
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-noop-")
    try:
        started = time.monotonic()
        with world(work, args.messages, big=not args.smoke) as bench:
            print(f"seeded {bench.box.messages} messages, {bench.box.bytes / 1e6:.0f} MB in "
                  f"{len(bench.box.folders)} folders ({time.monotonic() - started:.0f} s)",
                  flush=True)
            results = []
            for delay in delays:
                results += measure(bench, delay, work, args.repeat)
                print(f"  {delay:g} ms done", flush=True)
        print(report(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
