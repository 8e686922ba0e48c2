"""Benchmark batches: one process on SQLite against 1, 2 and 4 worker processes sharing a
PostgreSQL queue, each against a raw APPEND baseline measured in the same run; then a delta
pass (one new message in every finished mailbox) against the first full pass.

    python -m bench.batch [--mailboxes 200] [--messages 5] [--workers 1,2,4] [--parallel 4]

Seeds MAILBOXES small IMAP mailboxes on the test world's source (deterministic corpus,
messages up to 20 KB) and migrates them into the Exchange look-alike (XOAUTH2 through the
local identity service, real MSAL), each run into a fresh archive, manifest and set of target
mailboxes, migrator always as real subprocesses:

- baseline: a raw-protocol client in its own process, PARALLEL connections, each mailbox's
  messages appended with one XOAUTH2 login per mailbox and LITERAL+ APPENDs pipelined (64 in
  flight): what the target takes for this workload, no source, no archive;
- sqlite: `migrator batch run --parallel PARALLEL` (one process, SQLite manifest);
- postgres, W workers: `batch submit`, then W `migrator worker --parallel PARALLEL
  --until-empty` processes started together (wall time until the last one exits);
- delta passes: one new message in every mailbox, then the same SQLite batch run again and
  the largest worker count's queue submitted again: seconds per mailbox, and the ratio of
  the delta pass's time to its first full pass.
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    SMOKE_HELP,
    Run,
    Table,
    certificates,
    in_forked_child,
    machine,
    migrator,
    migrator_env,
    run_process,
    scratch,
)
from bench.raw_imap import append_pipelined, login
from tests.world.configs import Batch, Config, Endpoint, OAuth

APP, SECRET, PASSWORD = "batch-bench-app", "batch-bench-secret", "batch-bench-pw"
APP_SCOPE = ["https://outlook.office365.com/.default"]
MAX_SIZE = 20_000


def seed(source: Any, mailboxes: int, messages: int) -> tuple[list[str], dict[str, list[bytes]]]:
    """Users with small corpus mail in their INBOX; returns names and each one's messages."""
    from tests.world.corpus import generate

    users, mail = [], {}
    for index in range(mailboxes):
        user = f"u{index:03d}"
        source.add_user(user, PASSWORD)
        corpus = generate(seed=1000 + index, count=messages, max_size=MAX_SIZE, stdlib=False)
        source.seed(user, "INBOX", corpus)
        users.append(user)
        mail[user] = [item.raw for item in corpus]
    return users, mail


def add_one_message(source: Any, users: Sequence[str], mail: dict[str, list[bytes]]) -> None:
    from tests.world.mailstore import SeedMessage

    for user in users:
        raw = (f"From: someone@example.org\r\nTo: {user}@old.example\r\n"
               f"Subject: news for {user}\r\nMessage-ID: <delta.{user}@old.example>\r\n"
               "\r\nnew since the last pass\r\n").encode()
        source.seed(user, "INBOX", [SeedMessage(raw, (), 1_700_000_000)])
        mail[user].append(raw)


class Targets:
    """Fresh target mailboxes per run, granted to the benchmark's app."""

    def __init__(self, office365: Any, oauth: Any) -> None:
        self.office365, self.oauth = office365, oauth

    def make(self, users: Sequence[str], run: str) -> dict[str, str]:
        mailboxes = {}
        for user in users:
            mailbox = f"{user}.{run}@contoso.test"
            self.office365.add_user(mailbox)
            self.oauth.grant(APP, mailbox)
            mailboxes[user] = mailbox
        return mailboxes


def base_config(work: Path, run: str, source: Any, office365: Any, oauth: Any,
                parallel: int, database: str | None = None) -> Path:
    target = Endpoint("office365", port=office365.imaps_port, ca_file=office365.ca_cert,
                      oauth=OAuth(oauth.authority, oauth.ca_cert, client_id=APP,
                                  client_secret="env:BENCH_APP_SECRET"))
    batch = Batch(Endpoint("imap", port=source.imap_port, security="plain"), target,
                  parallel=parallel, report_dir=work / run / "reports")
    return Config(work / run / "archive", batch=batch, database=database).write(
        work / f"{run}.toml")


def users_csv(work: Path, run: str, mailboxes: dict[str, str]) -> Path:
    lines = ["account,source_user,source_secret,target_user"]
    lines += [f"{user},{user},env:BENCH_SOURCE_PW,{mailbox}"
              for user, mailbox in mailboxes.items()]
    path = work / f"{run}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the raw APPEND baseline ------------------------------------------------------------------
def baseline(port: int, certs: Any, oauth: Any, mail: dict[str, list[bytes]],
             mailboxes: dict[str, str], connections: int) -> float:
    """In a process of its own, like migrator (the test world runs in this one)."""
    return in_forked_child(_baseline, port, certs, oauth, mail, mailboxes, connections)


def _baseline(port: int, certs: Any, oauth: Any, mail: dict[str, list[bytes]],
              mailboxes: dict[str, str], connections: int) -> float:
    import msal

    started = time.monotonic()
    app = msal.ConfidentialClientApplication(
        APP, client_credential=SECRET, authority=oauth.authority,
        http_client=oauth.http_session(), instance_discovery=False)
    token = str(app.acquire_token_for_client(scopes=APP_SCOPE)["access_token"])
    context = ssl.create_default_context(cafile=certs.ca_cert)
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(lambda user: append_mailbox(port, context, mailboxes[user], token,
                                                  mail[user]), mailboxes))
    return time.monotonic() - started


def append_mailbox(port: int, context: ssl.SSLContext, mailbox: str, token: str,
                   messages: Sequence[bytes]) -> None:
    """One login, then every message APPENDed to INBOX with LITERAL+, pipelined."""
    sock, stream = login(port, context, mailbox, token)
    with sock:
        append_pipelined(sock, stream, ((b"INBOX", data) for data in messages))


# -- the runs ---------------------------------------------------------------------------------
def run_workers(config: Path, count: int, parallel: int, env: dict[str, str],
                servers: Sequence[Any] = ()) -> Run:
    """`count` worker processes started together; the wall time until the last one exits."""
    import sys

    argv = [sys.executable, "-m", "migrator", "-c", str(config), "worker",
            "--parallel", str(parallel), "--until-empty", "--poll", "0.5"]
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        runs = list(pool.map(lambda _: run_process(argv, env=env), range(count)))
    seconds = time.monotonic() - started
    attention = [line for run in runs for line in run.stdout.splitlines()
                 if line.split(": ")[1:2] and line.split(": ")[1].split(" ")[0]
                 in ("partial", "failed", "locked", "invalid")]
    if attention:  # said, not hidden: such a run's time is not comparable
        print(f"    {len(attention)} mailboxes need attention, the first ones:", flush=True)
    for line in attention[:10]:
        print(f"    needs attention: {line}", flush=True)
    said = [line for run in runs for line in run.stderr.splitlines()
            if any(word in line.lower() for word in ("warning", "error", "cannot", "lost"))]
    for line in said[:20]:  # the workers' own warnings (lease renewals, queue errors)
        print(f"    worker said: {line}", flush=True)
    assert all(run.status in (0, 4) for run in runs), [run.stderr for run in runs]
    if attention and servers:  # what the servers said meanwhile (limits, slow logins)
        for server in servers:
            lines = [line for line in server.log_text().splitlines()
                     if any(word in line for word in ("Warning", "Error", "Fatal", "Panic"))]
            for line in lines[-10:]:
                print(f"    {server.profile} server said: {line}", flush=True)
    return Run(seconds, max(run.peak_rss_mb for run in runs), 4 if attention else 0)


def submit(config: Path, csv_path: Path, env: dict[str, str]) -> None:
    result = migrator("-q", "-c", config, "batch", "submit", csv_path, env=env)
    assert result.status == 0, result.stdout + result.stderr


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, world: dict[str, Any]) -> None:
        self.args, self.work, self.world = args, work, world
        self.env = migrator_env(BENCH_APP_SECRET=SECRET, BENCH_SOURCE_PW=PASSWORD)
        self.targets = Targets(world["office365"], world["oauth"])
        self.table = Table(["run", "mailboxes", "msgs", "MB", "seconds", "msgs/s",
                            "s/mailbox", "peak RSS MB", "vs baseline", "vs full pass"])
        self.baseline_rate = 0.0
        self.servers = (world["source"], world["office365"])

    def config(self, run: str, database: str | None = None) -> Path:
        w = self.world
        return base_config(self.work, run, w["source"], w["office365"], w["oauth"],
                           self.args.parallel, database)

    def add(self, name: str, mail: dict[str, list[bytes]], seconds: float, rss: float | str,
            full: float | None = None) -> None:
        count = sum(len(messages) for messages in mail.values())
        size = sum(len(raw) for messages in mail.values() for raw in messages)
        rate = count / seconds
        ratio = f"{rate / self.baseline_rate:.2f}x" if self.baseline_rate else "1.00x"
        self.table.add(name, len(mail), count, size / 1e6, seconds, rate,
                       seconds / len(mail), rss, ratio,
                       f"{seconds / full:.2f}x" if full else "")
        if not self.baseline_rate:
            self.baseline_rate = rate
        print(f"  {name}: {seconds:.1f} s", flush=True)

    def measure(self, users: list[str], mail: dict[str, list[bytes]]) -> None:
        w, parallel = self.world, self.args.parallel
        seconds = baseline(w["office365"].imaps_port, w["certs"], w["oauth"], mail,
                           self.targets.make(users, "base"), parallel)
        self.add(f"raw APPEND baseline ({parallel} connections)", mail, seconds, "")

        sqlite = self.config("sqlite")
        sqlite_csv = users_csv(self.work, "sqlite", self.targets.make(users, "sqlite"))
        full = migrator("-q", "-c", sqlite, "batch", "run", sqlite_csv, env=self.env)
        assert full.status == 0, full.stdout + full.stderr
        self.add(f"sqlite: batch run --parallel {parallel}", mail, full.seconds,
                 full.peak_rss_mb)

        pg_full: dict[int, tuple[Path, Path, float]] = {}
        for count in self.args.workers:
            run = f"pg{count}"
            config = self.config(run, w["postgres"].create_database())
            csv_path = users_csv(self.work, run, self.targets.make(users, run))
            submit(config, csv_path, self.env)
            result = run_workers(config, count, parallel, self.env, self.servers)
            pg_full[count] = (config, csv_path, result.seconds)
            note = " (some need attention)" if result.status else ""
            self.add(f"postgres: {count} worker{'s' * (count > 1)} x --parallel {parallel}"
                     + note, mail, result.seconds, result.peak_rss_mb)

        add_one_message(w["source"], users, mail)
        delta_mail = {user: messages[-1:] for user, messages in mail.items()}
        again = migrator("-q", "-c", sqlite, "batch", "run", sqlite_csv, env=self.env)
        assert again.status == 0, again.stdout + again.stderr
        self.add("sqlite: delta pass (1 new msg each)", delta_mail, again.seconds,
                 again.peak_rss_mb, full.seconds)
        count = max(self.args.workers)
        config, csv_path, first = pg_full[count]
        submit(config, csv_path, self.env)
        result = run_workers(config, count, parallel, self.env, self.servers)
        note = " (some need attention)" if result.status else ""
        self.add(f"postgres: delta pass, {count} worker{'s' * (count > 1)}" + note, delta_mail,
                 result.seconds, result.peak_rss_mb, first)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="per mailbox")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--parallel", type=int, default=4, help="mailboxes at once per process")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    args.workers = [int(count) for count in args.workers.split(",")]
    from tests.world.dovecot import Office365Server, SourceServer
    from tests.world.oauth import OAuthService
    from tests.world.postgres import PostgresServer, missing_reason

    if missing_reason():
        print(f"bench.batch needs PostgreSQL: {missing_reason()}")
        return 1
    work = scratch("migrator-bench-batch-")
    try:
        with certificates() as certs, SourceServer(certs) as source, \
                OAuthService(certs) as oauth, PostgresServer() as postgres, \
                Office365Server(certs, oauth.introspection_url) as office365:
            oauth.add_client(APP, SECRET)
            users, mail = seed(source, args.mailboxes, args.messages)
            bench = Bench(args, work, {"certs": certs, "source": source, "oauth": oauth,
                                       "office365": office365, "postgres": postgres})
            load = machine()
            print(f"source IMAP port {source.imap_port}, Exchange look-alike IMAPS port "
                  f"{office365.imaps_port}", flush=True)
            bench.measure(users, mail)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"batch benchmark ({load})")
    print(bench.table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
