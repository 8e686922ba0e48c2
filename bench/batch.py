"""Benchmark `migrator batch run`: total throughput with 1, 4 and 8 mailboxes at once.

    python -m bench.batch [--mailboxes 20] [--messages 100] [--parallel 1,4,8]

Seeds MAILBOXES IMAP mailboxes on the test world's source (deterministic corpus, messages up
to 200 KB) and migrates them into the Exchange look-alike (XOAUTH2 through the local identity
service, real MSAL) with `python -m migrator batch run` in a subprocess, once per parallelism,
each run into a fresh archive and fresh target mailboxes. The reference is one mailbox
migrated alone (`migrator migrate`) in the same run: the ratio says how much a batch gains
over doing mailboxes one after another at the single-mailbox rate.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from bench.common import Table, certificates, machine, migrator, migrator_env, scratch
from tests.world.configs import Account, Batch, Config, Endpoint, OAuth

APP, SECRET, PASSWORD = "batch-bench-app", "batch-bench-secret", "batch-bench-pw"


def seed(source, mailboxes: int, messages: int) -> tuple[list[str], int, int]:
    """Users with corpus mail in their INBOX; returns names, message and byte totals."""
    from tests.world.corpus import generate

    users, count, size = [], 0, 0
    for index in range(mailboxes):
        user = f"u{index:02d}"
        source.add_user(user, PASSWORD)
        corpus = generate(seed=1000 + index, count=messages, max_size=200_000, stdlib=False)
        source.seed(user, "INBOX", corpus)
        users.append(user)
        count += len(corpus)
        size += sum(len(item.raw) for item in corpus)
    return users, count, size


def _oauth(oauth) -> OAuth:
    return OAuth(oauth.authority, oauth.ca_cert, client_id=APP,
                 client_secret="env:BENCH_APP_SECRET")


def base_config(work: Path, source, office365, oauth, run: str) -> Path:
    batch = Batch(Endpoint("imap", port=source.imap_port, security="plain"),
                  Endpoint("office365", port=office365.imaps_port, ca_file=office365.ca_cert,
                           oauth=_oauth(oauth)),
                  report_dir=work / run / "reports")
    return Config(work / run / "archive", batch=batch).write(work / f"{run}.toml")


def users_csv(work: Path, users: Sequence[str], office365, oauth, run: str) -> Path:
    lines = ["account,source_user,source_secret,target_user"]
    for user in users:
        mailbox = f"{user}.{run}@contoso.test"
        office365.add_user(mailbox)
        oauth.grant(APP, mailbox)
        lines.append(f"{user},{user},env:BENCH_SOURCE_PW,{mailbox}")
    path = work / f"{run}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def single_config(work: Path, source, office365, oauth, user: str) -> Path:
    mailbox = f"{user}.single@contoso.test"
    office365.add_user(mailbox)
    oauth.grant(APP, mailbox)
    source = Endpoint("imap", port=source.imap_port, security="plain", username=user,
                      password="env:BENCH_SOURCE_PW")
    target = Endpoint("office365", port=office365.imaps_port, ca_file=office365.ca_cert,
                      username=mailbox, oauth=_oauth(oauth))
    return Config(work / "single" / "archive", {user: Account(source, target)}).write(
        work / "single.toml")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100, help="per mailbox")
    parser.add_argument("--parallel", default="1,4,8")
    args = parser.parse_args(argv)
    from tests.world.dovecot import Office365Server, SourceServer
    from tests.world.oauth import OAuthService

    work = scratch("migrator-bench-batch-")
    env = migrator_env(BENCH_APP_SECRET=SECRET, BENCH_SOURCE_PW=PASSWORD)
    table = Table(["run", "mailboxes", "msgs", "MB", "seconds", "msgs/s", "MB/s",
                   "peak RSS MB", "vs 1 mailbox"])
    try:
        with certificates() as certs, SourceServer(certs) as source, \
                OAuthService(certs) as oauth, \
                Office365Server(certs, oauth.introspection_url) as office365:
            oauth.add_client(APP, SECRET)
            users, count, size = seed(source, args.mailboxes, args.messages)
            per_box, per_box_bytes = count / len(users), size / len(users)
            single = migrator("-q", "-c", single_config(work, source, office365, oauth,
                                                         users[0]),
                              "migrate", users[0], env=env)
            assert single.status == 0, single.stderr
            single_rate = per_box / single.seconds
            table.add("migrate 1 mailbox", 1, round(per_box), per_box_bytes / 1e6,
                      single.seconds, single_rate, per_box_bytes / 1e6 / single.seconds,
                      single.peak_rss_mb, "1.00x")
            for parallel in (int(p) for p in args.parallel.split(",")):
                run = f"p{parallel}"
                config = base_config(work, source, office365, oauth, run)
                result = migrator("-q", "-c", config, "batch", "run",
                                  users_csv(work, users, office365, oauth, run),
                                  "--parallel", str(parallel), env=env)
                assert result.status == 0, result.stdout + result.stderr
                rate = count / result.seconds
                table.add(f"batch --parallel {parallel}", len(users), count, size / 1e6,
                          result.seconds, rate, size / 1e6 / result.seconds,
                          result.peak_rss_mb, f"{rate / single_rate:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"batch benchmark ({machine()})")
    print(table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
