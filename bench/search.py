"""Benchmark what the search index costs a pull, and what searching costs.

    python -m bench.search [--messages 5000] [--repeat 3] [--smoke]

Seeds the test-world source with the pull benchmark's corpus (bench/pull.py, one 30 MB
message included), then, each repeat, in alternating order:

- pull, no index: `python -m migrator pull` into an empty archive with
  `[archive] search_index = false`;
- pull + index: the same with the index on (the default): the pull's wall time includes
  the indexer finishing its queue before the process exits.

Each pull's CPU seconds (user + system, the migrator process and the indexer's extraction
process) are reported beside its times: on a shared machine they vary less than wall time.

Then on the indexed archive: `migrator index --rebuild` (indexing every message afresh,
what an upgraded archive costs once) and `migrator search` for a word, a phrase with a
field filter, and a date filter (wall time, including interpreter start).

The slowdown is pull + index over pull, no index (medians, wall time); target <= 1.20x.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import SMOKE_HELP, Table, machine, migrator, migrator_env, scratch, settle
from bench.common import source_server as start_source
from bench.pull import PASSWORD, USER, archived, run_seconds, seed
from tests.world.configs import Account, Config, Endpoint

QUERIES = (("a word", ("budget",)), ("phrase + from:", ('"quarterly report"', "from:anna")),
           ("date filter", ("after:2019-01-01", "before:2020-01-01")))


def write_config(directory: Path, port: int, search_index: bool) -> Path:
    source = Endpoint("imap", port=port, security="plain", username=USER,
                      password="env:BENCH_IMAP_PASSWORD")
    return Config(directory / "archive", {USER: Account(source)},
                  search_index=search_index).write(directory / "bench.toml")


def indexed(archive: Path) -> int:
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        return int(db.execute("SELECT COUNT(*) FROM search_docs").fetchone()[0])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pull(port: int, work: Path, search_index: bool,
         wait: bool) -> tuple[tuple[float, float, float], Path]:
    """((wall s, run s, CPU s), config) of one pull into a fresh archive."""
    run_dir = Path(tempfile.mkdtemp(prefix="pull-", dir=work))
    if wait:
        settle(work)
    config = write_config(run_dir, port, search_index)
    cpu = children_cpu()
    run = migrator("-c", config, "-q", "pull", USER, env=migrator_env(BENCH_IMAP_PASSWORD=PASSWORD))
    if run.status != 0:
        raise RuntimeError(f"migrator pull failed ({run.status}): {run.stderr}")
    cpu = children_cpu() - cpu
    return (run.seconds, run_seconds(run_dir / "archive"), cpu), config


def timed(config: Path, *args: str) -> float:
    run = migrator("-c", config, "-q", *args, env=migrator_env())
    if run.status != 0:
        raise RuntimeError(f"migrator {' '.join(args)} failed ({run.status}): {run.stderr}")
    return run.seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="pulls of each kind (default 3)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--no-wait", action="store_true",
                        help="skip waiting for a quiet disk before each pull (on a shared "
                             "machine it may never come; the two kinds alternate, so both "
                             "meet the same disk)")
    args = parser.parse_args(argv)
    wait = not (args.smoke or args.no_wait)
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-search-")
    try:
        with start_source() as server:
            server.add_user(USER, PASSWORD)
            started = time.monotonic()
            box = seed(server, args.messages, big=not args.smoke)
            print(f"seeded {box.messages} messages, {box.bytes / 1e6:.0f} MB "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            pull(server.imap_port, work, False, False)  # warm-up: Dovecot's caches, page cache
            runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
            config = None
            for repeat in range(args.repeat):
                for search_index in ((False, True) if repeat % 2 == 0 else (True, False)):
                    times, used = pull(server.imap_port, work, search_index, wait)
                    runs[search_index].append(times)
                    if search_index:
                        config = used
                print(f"  round {repeat + 1} done", flush=True)
            assert config is not None
            archive = config.parent / "archive"
            count, size = archived(archive)
            if indexed(archive) == 0 or count != box.messages:
                raise RuntimeError(f"pull + index archived {count} messages, indexed "
                                   f"{indexed(archive)}")
            rebuild = timed(config, "index", USER, "--rebuild")
            searches = [(label, timed(config, "search", USER, *query))
                        for label, query in QUERIES]
        print(report(runs, count, size, indexed(archive), rebuild, searches))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(runs: dict[bool, list[tuple[float, float, float]]], count: int, size: int,
           docs: int, rebuild: float, searches: list[tuple[str, float]]) -> str:
    table = Table(["run", "msgs", "MB", "s (wall)", "s (run)", "s (CPU)", "msgs/s",
                   "vs no index"])
    base = statistics.median(wall for wall, _, _ in runs[False])
    for search_index, label in ((False, "pull, no index"), (True, "pull + index")):
        wall, own, cpu = (statistics.median(times[i] for times in runs[search_index])
                          for i in range(3))
        table.add(label, count, size / 1e6, wall, own, cpu, count / wall,
                  f"{wall / base:.2f}x")
    table.add("index --rebuild", docs, size / 1e6, rebuild, "", "", docs / rebuild, "")
    for label, seconds in searches:
        table.add(f"search: {label}", "", "", seconds, "", "", "", "")
    return table.render()


if __name__ == "__main__":
    raise SystemExit(main())
