"""Benchmark `migrator export` against a raw copy of the same bytes, in the same run.

    python -m bench.export [--messages 2000] [--max-size 200000] [--repeat 3]

Fills an archive with the deterministic corpus (tests/world/corpus.py) through the ingest a
pull uses, then, alternating, for each format:

- raw copy (the yardstick): every archived message of the account, in the same folders, read
  from its blob file and written to a file of its own (temp file + rename), one syncfs per
  500 files: the least a durable one-file-per-message copy does;
- export: `python -m migrator export` into an empty DEST (a real subprocess; `s (run)` is
  the run's own duration from the manifest's `runs` table, `s (wall)` adds interpreter
  start, imports and opening the manifest);
- no-op: the same export again (everything is already there).

A round's ratio is its export's msgs/s (run) over its raw copy's; the table shows the median
of the rounds' ratios and their range. Nothing is deleted
until the end, and each round (the three formats back to back) starts once file creation
runs at its usual pace and the disk is quiet (bench.common.settle; README "Measuring on this
machine").
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import sqlite3
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Table, machine, migrator, migrator_env, scratch, settle
from migrator.durable import sync_filesystem, write_all

FORMATS = ("maildir", "mbox", "eml")
SYNC_EVERY = 500


@dataclass
class Result:
    fmt: str
    round_: int
    run: str
    messages: int
    megabytes: float
    seconds: float
    wall: float | None = None
    peak_rss_mb: float | None = None


def fill(archive: Path, count: int, max_size: int) -> list[tuple[str, Path]]:
    """The corpus into a migrator archive; [(folder, blob path)] per message row."""
    from migrator.archive.blobs import BlobStore, sha256_hex
    from migrator.archive.db import open_manifest
    from migrator.archive.ingest import (
        FetchedMessage,
        add_messages,
        ensure_account,
        ensure_folder,
    )
    from tests.world.corpus import generate

    corpus = generate(seed=20240601, count=count, max_size=max_size, stdlib=False)
    manifest = open_manifest(f"sqlite:///{archive / 'manifest.sqlite'}")
    store = BlobStore(archive)
    rows = []
    try:
        with manifest.session() as session:
            account = ensure_account(session, "bench", "imap")
            ids = {name: ensure_folder(session, account, name, delimiter=".").id
                   for name in sorted({m.folder for m in corpus})}
        for name, folder_id in ids.items():
            items = [m for m in corpus if m.folder == name]
            for start in range(0, len(items), 500):
                add_messages(manifest, store, folder_id, [
                    FetchedMessage(m.raw, uid=start + i + 1, uidvalidity=1, flags=m.flags,
                                   internaldate=m.internaldate.isoformat())
                    for i, m in enumerate(items[start:start + 500])])
            rows += [(name, store.path(sha256_hex(m.raw))) for m in items]
    finally:
        manifest.close()
    return rows


def raw_copy(rows: list[tuple[str, Path]], dest: Path) -> float:
    """Copy every message's bytes to a file of its own, durably; the seconds it took."""
    started = time.monotonic()
    for folder in {name for name, _ in rows}:
        (dest / folder).mkdir(parents=True)
    for n, (folder, blob) in enumerate(rows, 1):
        final = dest / folder / f"{n}.eml"
        temp = dest / folder / f".tmp-{n}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, blob.read_bytes())
        finally:
            os.close(fd)
        os.rename(temp, final)
        if n % SYNC_EVERY == 0:
            sync_filesystem(dest)
    sync_filesystem(dest)
    return time.monotonic() - started


def run_seconds(archive: Path) -> float:
    with contextlib.closing(sqlite3.connect(archive / "manifest.sqlite")) as db:
        started, finished = db.execute(
            "SELECT started_at, finished_at FROM runs WHERE command = 'export' "
            "ORDER BY id DESC LIMIT 1").fetchone()
    return (datetime.datetime.fromisoformat(finished)
            - datetime.datetime.fromisoformat(started)).total_seconds()


def write_config(work: Path) -> Path:
    path = work / "migrator.toml"
    path.write_text(f'[archive]\npath = "{work / "archive"}"\n\n[accounts.bench.source]\n'
                    'kind = "imap"\nhost = "127.0.0.1"\nusername = "bench"\n'
                    'password = "env:UNUSED"\n', encoding="utf-8")
    return path


def measure(work: Path, rows: list[tuple[str, Path]], fmt: str, round_: int) -> list[Result]:
    size = sum(blob.stat().st_size for _, blob in rows) / 1e6
    copy = Result(fmt, round_, "raw copy", len(rows), size,
                  raw_copy(rows, work / f"raw-{fmt}-{round_}"))
    dest = work / f"export-{fmt}-{round_}"
    results = [copy]
    for run in ("export", "no-op"):
        done = migrator("-c", write_config(work), "-q", "export", "bench", "--format", fmt,
                        dest, env=migrator_env())
        if done.status != 0:
            raise SystemExit(f"export failed ({done.status}): {done.stderr}")
        results.append(Result(fmt, round_, run, len(rows) if run == "export" else 0,
                              size if run == "export" else 0.0, run_seconds(work / "archive"),
                              done.seconds, done.peak_rss_mb))
    return results


def report(results: list[Result]) -> str:
    """Medians per format and run; the ratio is the median of each round's own ratio (the
    raw copy and the export of a round ran back to back), with its range."""
    table = Table(["format", "run", "msgs", "MB", "s (run)", "s range", "s (wall)", "msgs/s",
                   "peak RSS MB", "vs raw copy", "ratio range"])
    for fmt in FORMATS:
        mine = [r for r in results if r.fmt == fmt]
        if not mine:
            continue
        ratios = [_seconds(mine, "raw copy", n) / _seconds(mine, "export", n)
                  for n in sorted({r.round_ for r in mine})]
        for run in ("raw copy", "export", "no-op"):
            rows = [r for r in mine if r.run == run]
            seconds = statistics.median(r.seconds for r in rows)
            wall = [r.wall for r in rows if r.wall is not None]
            rss = [r.peak_rss_mb for r in rows if r.peak_rss_mb is not None]
            exported = run == "export"
            table.add(fmt, run, rows[0].messages, rows[0].megabytes, seconds,
                      f"{min(r.seconds for r in rows):.2f}-{max(r.seconds for r in rows):.2f}",
                      statistics.median(wall) if wall else "",
                      rows[0].messages / seconds if rows[0].messages else "",
                      max(rss) if rss else "",
                      f"{statistics.median(ratios):.2f}x" if exported else "",
                      f"{min(ratios):.2f}-{max(ratios):.2f}" if exported else "")
    return table.render()


def _seconds(results: list[Result], run: str, round_: int) -> float:
    return next(r.seconds for r in results if r.run == run and r.round_ == round_)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--max-size", type=int, default=200_000,
                        help="largest message in bytes, about (default 200000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="default all three")
    parser.add_argument("--keep", action="store_true", help="leave the scratch directory")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    work = scratch("migrator-bench-export-")
    try:
        rows = fill(work / "archive", args.messages, args.max_size)
        print(f"archived {len(rows)} messages", flush=True)
        results = []
        for round_ in range(args.repeat):
            settle(work)
            for fmt in args.formats.split(","):
                results += measure(work, rows, fmt, round_)
            print(f"  round {round_ + 1} done", flush=True)
        print(report(results))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
