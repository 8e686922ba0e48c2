"""Benchmark what the search index costs a pull, and what searching costs.

    python -m bench.search [--messages 5000] [--repeat 6] [--compare CHECKOUT ...] [--smoke]

Seeds the test-world source with the pull benchmark's corpus (bench/pull.py, one 30 MB
message included), then runs `--repeat` rounds of pulls, each into an empty archive:

- pull, no index: `python -m migrator pull` with `[archive] search_index = false`;
- pull + index: the same with the index on (the default): the pull's wall time includes
  the indexer finishing its queue before the process exits;
- with `--compare CHECKOUT` (repeatable), also pull + index from that checkout of migrator
  (e.g. `git worktree add /tmp/before main`): a before/after in the same rounds.

The order within a round alternates (ABBA: no index, index, then index, no index), so a
drift of the machine's load meets both kinds alike. Each round gives one ratio, pull + index
over its own round's pull, no index; the report gives the median of those ratios and their
range: one noisy pull moves one ratio, not the median. (Comparing medians of each kind would
pair a quiet pull with a busy one.) Each pull's CPU seconds (user + system, the migrator
process and the indexer's extraction process) are reported too: on a shared machine they
vary far less than wall time, and the index's CPU (per round, the index pull's CPU less the
no-index pull's) is its steady cost; the report says what share of the no-index pull's wall
time it would be if none of it overlapped the pull.

Then on the indexed archive: `migrator index --rebuild` (indexing every message afresh,
what an upgraded archive costs once) and `migrator search` for a word, a phrase with a
field filter, and a date filter (wall time, including interpreter start).

The slowdown target: median ratio <= 1.20x.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


Times = tuple[float, float, float]  # wall s, run s (the manifest's), CPU s
NO_INDEX, INDEX = "pull, no index", "pull + index"


@dataclass(frozen=True)
class Kind:
    """One kind of pull a round measures."""

    label: str
    search_index: bool
    checkout: Path | None = None  # another checkout of migrator (None: this one)


def pull(port: int, work: Path, kind: Kind, wait: bool) -> tuple[Times, Path]:
    """((wall s, run s, CPU s), config) of one pull into a fresh archive."""
    run_dir = Path(tempfile.mkdtemp(prefix="pull-", dir=work))
    if wait:
        settle(work)
    config = write_config(run_dir, port, kind.search_index)
    env = migrator_env(BENCH_IMAP_PASSWORD=PASSWORD)
    if kind.checkout is not None:
        env["PYTHONPATH"] = str(kind.checkout)
    run = migrator("-c", config, "-q", "pull", USER, env=env, cwd=kind.checkout)
    if run.status != 0:
        raise RuntimeError(f"migrator pull failed ({run.status}): {run.stderr}")
    return (run.seconds, run_seconds(run_dir / "archive"), run.cpu), config


def round_order(kinds: Sequence[Kind], number: int) -> list[Kind]:
    """The kinds in round `number`'s order: forwards, then backwards (ABBA)."""
    return list(kinds) if number % 2 == 0 else list(reversed(kinds))


def timed(config: Path, *args: str) -> float:
    run = migrator("-c", config, "-q", *args, env=migrator_env())
    if run.status != 0:
        raise RuntimeError(f"migrator {' '.join(args)} failed ({run.status}): {run.stderr}")
    return run.seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="corpus size (default 5000)")
    parser.add_argument("--repeat", type=int, default=6,
                        help="rounds, each one pull of each kind (default 6: an even number "
                             "puts each kind in each place equally often)")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT", action="append",
                        default=[], help="also pull + index from another checkout of migrator, "
                                         "in the same rounds (repeatable)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--no-wait", action="store_true",
                        help="skip waiting for a quiet disk before each pull (on a shared "
                             "machine it may never come; the kinds alternate, so all "
                             "meet the same disk)")
    args = parser.parse_args(argv)
    wait = not (args.smoke or args.no_wait)
    kinds = [Kind(NO_INDEX, False), Kind(INDEX, True)]
    kinds += [Kind(f"{INDEX} ({checkout.name})", True, checkout.resolve())
              for checkout in args.compare]
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-search-")
    try:
        with start_source() as server:
            server.add_user(USER, PASSWORD)
            started = time.monotonic()
            box = seed(server, args.messages, big=not args.smoke)
            print(f"seeded {box.messages} messages, {box.bytes / 1e6:.0f} MB "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            pull(server.imap_port, work, kinds[0], False)  # warm-up: Dovecot's, page cache
            rounds: list[dict[str, Times]] = []
            config = None
            for number in range(args.repeat):
                measured = {}
                for kind in round_order(kinds, number):
                    measured[kind.label], used = pull(server.imap_port, work, kind, wait)
                    if kind.label == INDEX:
                        config = used
                rounds.append(measured)
                print(f"  round {number + 1}: " + ", ".join(
                    f"{label} {times[0]:.2f} s / {times[2]:.2f} CPU s"
                    for label, times in measured.items()), flush=True)
            assert config is not None
            archive = config.parent / "archive"
            count, size = archived(archive)
            if indexed(archive) == 0 or count != box.messages:
                raise RuntimeError(f"pull + index archived {count} messages, indexed "
                                   f"{indexed(archive)}")
            rebuild = timed(config, "index", USER, "--rebuild")
            searches = [(label, timed(config, "search", USER, *query))
                        for label, query in QUERIES]
        print(report([kind.label for kind in kinds], rounds, count, size, indexed(archive),
                     rebuild, searches))
        print(index_cost(kinds[1:], rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def ratios(rounds: Sequence[dict[str, Times]], label: str, field: int = 0) -> list[float]:
    """Per round, `label`'s figure over the no-index pull's."""
    return [measured[label][field] / measured[NO_INDEX][field] for measured in rounds]


def index_cpu(rounds: Sequence[dict[str, Times]], label: str) -> list[float]:
    """Per round, the CPU seconds `label`'s pull took beyond the no-index pull's."""
    return [measured[label][2] - measured[NO_INDEX][2] for measured in rounds]


def span(values: Sequence[float], unit: str = "") -> str:
    return f"{min(values):.2f}{unit}-{max(values):.2f}{unit}"


def report(labels: Sequence[str], rounds: Sequence[dict[str, Times]], count: int, size: int,
           docs: int, rebuild: float, searches: list[tuple[str, float]]) -> str:
    table = Table(["run", "msgs", "MB", "s (wall)", "s (run)", "s (CPU)", "msgs/s",
                   "vs no index (median of rounds)", "range", "index CPU s"])
    for label in labels:
        wall, own, cpu = (statistics.median(measured[label][i] for measured in rounds)
                          for i in range(3))
        indexing = label != NO_INDEX
        table.add(label, count, size / 1e6, wall, own, cpu, count / wall,
                  f"{statistics.median(ratios(rounds, label)):.2f}x" if indexing else "",
                  span(ratios(rounds, label), "x") if indexing else "",
                  statistics.median(index_cpu(rounds, label)) if indexing else "")
    blank = ("",) * 3
    table.add("index --rebuild", docs, size / 1e6, rebuild, "", "", docs / rebuild, *blank)
    for label, seconds in searches:
        table.add(f"search: {label}", "", "", seconds, "", "", "", *blank)
    return table.render()


def index_cost(kinds: Sequence[Kind], rounds: Sequence[dict[str, Times]]) -> str:
    """The index's CPU per pull, and what share of the pull's wall time it would be if none
    of it overlapped the pull (the ratio's ceiling on a machine with no idle core)."""
    base = statistics.median(measured[NO_INDEX][0] for measured in rounds)
    lines = []
    for kind in kinds:
        cpu = index_cpu(rounds, kind.label)
        lines.append(f"{kind.label}: the index took {statistics.median(cpu):.2f} CPU s "
                     f"(range {span(cpu)}) in {len(rounds)} rounds, "
                     f"{statistics.median(cpu) / base:.0%} of the no-index pull's wall time "
                     f"({base:.2f} s) if it overlapped none of it; CPU ratio "
                     f"{statistics.median(ratios(rounds, kind.label, 2)):.2f}x")
    walls = [measured[NO_INDEX][0] for measured in rounds]
    lines.append(f"the no-index pulls alone: {span(walls, ' s')} ({max(walls) / min(walls):.2f}x "
                 "max/min): a ratio's range near that says the machine, not the index, set it")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
