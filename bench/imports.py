"""Benchmark import (`kind = "maildir" | "mbox" | "eml"`) against a raw copy of the same
bytes, in the same run.

    python -m bench.imports [--messages 2000] [--max-size 200000] [--repeat 3] [--smoke]

Fills an archive with the deterministic corpus (tests/world/corpus.py) and exports it once
per format with `migrator export` (untimed): those trees are what is imported. Then,
alternating, for each format:

- raw copy (the yardstick, bench/export.py's): every message's bytes written to a file of
  its own (temp file + rename), one syncfs per 500 files: the least a durable store of one
  file per message does;
- import: `python -m migrator pull` of an account whose source is the exported tree, into an
  empty archive (a real subprocess; `s (run)` is the run's own duration from the manifest's
  `runs` table, `s (wall)` adds interpreter start, imports and creating the manifest);
- no-op: the same import again (every key already archived: reading and hashing the files
  for mbox, listing them for Maildir and .eml).

A round's ratio is the raw copy's seconds over the import's (run): 1.00x is as fast as the
raw copy. `--no-settle` skips the wait for a quiet disk before each round (on a machine busy
with other jobs it can wait 8 minutes a round); `--smoke` too (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import shutil
import sqlite3
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.common import Table, machine, migrator, migrator_env, scratch, settle
from bench.export import fill, raw_copy
from bench.export import write_config as export_config

FORMATS = ("maildir", "mbox", "eml")


def run_seconds(archive: Path) -> float:
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        started, finished = db.execute(
            "SELECT started_at, finished_at FROM runs WHERE command = 'pull' "
            "ORDER BY id DESC LIMIT 1").fetchone()
    return (datetime.datetime.fromisoformat(finished)
            - datetime.datetime.fromisoformat(started)).total_seconds()


def import_config(work: Path, fmt: str, source: Path) -> Path:
    path = work / f"import-{fmt}.toml"
    path.write_text(f'[archive]\npath = "{work / "archive"}"\n\n[accounts.imported.source]\n'
                    f'kind = "{fmt}"\npath = "{source}"\n', encoding="utf-8")
    return path


def export_all(work: Path, formats: list[str]) -> dict[str, Path]:
    trees = {}
    for fmt in formats:
        trees[fmt] = work / f"source-{fmt}"
        done = migrator("-c", export_config(work), "-q", "export", "bench", "--format", fmt,
                        trees[fmt], env=migrator_env())
        if done.status != 0:
            raise SystemExit(f"export failed ({done.status}): {done.stderr}")
    return trees


def measure(work: Path, rows: list[tuple[str, Path]], fmt: str, tree: Path,
            round_: int) -> list[tuple[str, str, int, float, float, float | None, float | None]]:
    """(format, run, messages, MB, seconds, wall, peak RSS) for the three runs of a round."""
    size = sum(blob.stat().st_size for _, blob in rows) / 1e6
    results = [(fmt, "raw copy", len(rows), size, raw_copy(rows, work / f"raw-{fmt}-{round_}"),
                None, None)]
    place = work / f"import-{fmt}-{round_}"
    place.mkdir()
    config = import_config(place, fmt, tree)
    for run in ("import", "no-op"):
        done = migrator("-c", config, "-q", "pull", "imported", env=migrator_env())
        if done.status != 0:
            raise SystemExit(f"import failed ({done.status}): {done.stderr}")
        first = run == "import"
        results.append((fmt, run, len(rows) if first else 0, size if first else 0.0,
                        run_seconds(place / "archive"), done.seconds, done.peak_rss_mb))
    return results


def report(results: list, rounds: int) -> str:
    table = Table(["format", "run", "msgs", "MB", "s (run)", "s range", "s (wall)", "msgs/s",
                   "MB/s", "peak RSS MB", "vs raw copy", "ratio range"])
    for fmt in FORMATS:
        mine = [r for r in results if r[0] == fmt]
        if not mine:
            continue
        per_round = [mine[n * 3:(n + 1) * 3] for n in range(rounds)]
        ratios = [chunk[0][4] / chunk[1][4] for chunk in per_round]
        for index, run in enumerate(("raw copy", "import", "no-op")):
            rows = [chunk[index] for chunk in per_round]
            seconds = statistics.median(r[4] for r in rows)
            wall = [r[5] for r in rows if r[5] is not None]
            rss = [r[6] for r in rows if r[6] is not None]
            timed = run == "import"
            table.add(fmt, run, rows[0][2], rows[0][3], seconds,
                      f"{min(r[4] for r in rows):.2f}-{max(r[4] for r in rows):.2f}",
                      statistics.median(wall) if wall else "",
                      rows[0][2] / seconds if rows[0][2] else "",
                      rows[0][3] / seconds if rows[0][2] else "",
                      max(rss) if rss else "",
                      f"{statistics.median(ratios):.2f}x" if timed else "",
                      f"{min(ratios):.2f}-{max(ratios):.2f}" if timed else "")
    return table.render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--max-size", type=int, default=200_000,
                        help="largest message in bytes, about (default 200000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="default all three")
    parser.add_argument("--smoke", action="store_true",
                        help="no quiet-disk wait (for the test suite; figures mean nothing)")
    parser.add_argument("--no-settle", action="store_true",
                        help="no quiet-disk wait before each round (a busy machine)")
    parser.add_argument("--keep", action="store_true", help="leave the scratch directory")
    args = parser.parse_args(argv)
    formats = args.formats.split(",")
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-import-")
    try:
        rows = fill(work / "archive", args.messages, args.max_size)
        trees = export_all(work, formats)
        print(f"exported {len(rows)} messages as {', '.join(formats)}", flush=True)
        results = []
        for round_ in range(args.repeat):
            if not (args.smoke or args.no_settle):
                settle(work)
            for fmt in formats:
                results += measure(work, rows, fmt, trees[fmt], round_)
            print(f"  round {round_ + 1} done", flush=True)
        print(report(results, args.repeat))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
