"""Batch reports: a CSV and a JSON file per run, one row per mailbox, no secrets in them.

Rows hold counts, states and reasons only; secret references never appear (the report is
built from outcomes, not from the config).

Bytes have one definition, in two columns: `archived_bytes`, the size of the messages this run
copied from the source into the archive (as the `archived` column counts them), and
`pushed_bytes`, the size of those it appended to the target (the `pushed` column), whatever
the source's protocol.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from migrator.diskfull import disk_full, is_disk_full
from migrator.durable import atomic_write
from migrator.engine.batch import MailboxOutcome
from migrator.errors import StorageError

REPORT_COLUMNS = ("line", "account", "state", "found", "archived", "pushed", "already_present",
                  "refused", "failed", "archived_bytes", "pushed_bytes", "verified", "seconds",
                  "error", "failures")
# A batch job is a pull (IMAP counts `fetched_bytes`, POP3 `bytes`) or a migrate, which
# prefixes its stages' counts with `pull_` and `push_`.
ARCHIVED_BYTES = ("fetched_bytes", "bytes", "pull_fetched_bytes", "pull_bytes")
PUSHED_BYTES = ("push_bytes",)


def _count(outcome: MailboxOutcome, *keys: str) -> int:
    """A count whether the job was a plain pull (`fetched`) or a migrate (`pull_fetched`)."""
    return sum(outcome.counts.get(key, 0) for key in keys)


def archived_bytes(outcome: MailboxOutcome) -> int:
    return _count(outcome, *ARCHIVED_BYTES)


def pushed_bytes(outcome: MailboxOutcome) -> int:
    return _count(outcome, *PUSHED_BYTES)


def report_row(outcome: MailboxOutcome) -> dict[str, object]:
    return {
        "line": outcome.line, "account": outcome.account, "state": outcome.state,
        "found": outcome.found,
        "archived": _count(outcome, "fetched", "pull_fetched"),
        "pushed": _count(outcome, "push_pushed"),
        "already_present": _count(outcome, "push_already_there"),
        "refused": _count(outcome, "push_refused"),
        "failed": max(_count(outcome, "failed", "pull_failed", "push_failed"),
                      len(outcome.failures)),
        "archived_bytes": archived_bytes(outcome), "pushed_bytes": pushed_bytes(outcome),
        "verified": "" if outcome.verified is None else ("yes" if outcome.verified else "no"),
        "seconds": round(outcome.seconds, 1), "error": outcome.error or "",
        "failures": " | ".join(outcome.failures),
    }


def write_reports(directory: Path, outcomes: Sequence[MailboxOutcome],
                  started: datetime) -> tuple[Path, Path]:
    """`batch-YYYYMMDD-HHMMSS.csv` and `.json`; a second batch started in the same second
    (another process, another host on a shared directory) gets `..._2`, never the first's
    (`_` sorts after `.`: listed by name, reports stay in the order they were started)."""
    rows = [report_row(outcome) for outcome in outcomes]
    report = {"started": started.isoformat(), "mailboxes": rows}
    csv_path: Path | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        csv_path = claim_name(directory, f"batch-{started.strftime('%Y%m%d-%H%M%S')}")
        json_path = csv_path.with_suffix(".json")
        atomic_write(csv_path, _csv_text(rows).encode("utf-8"))
        atomic_write(json_path, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        if csv_path is not None:  # the claimed name, left empty by the failed write
            with contextlib.suppress(OSError):
                if csv_path.stat().st_size == 0:
                    csv_path.unlink()
        what = f"cannot write batch report in {directory}"
        raise disk_full(what, exc) if is_disk_full(exc) else StorageError(
            f"{what}: {exc.strerror or exc}") from None
    return csv_path, json_path


CLAIM_TRIES = 1000


def claim_name(directory: Path, stem: str) -> Path:
    """`stem.csv`, or `stem_2.csv`, `stem_3.csv`... : the first one nobody has, created
    empty here (O_EXCL: two writers cannot both get it) and filled by the caller."""
    for number in range(1, CLAIM_TRIES + 1):
        path = directory / (f"{stem}.csv" if number == 1 else f"{stem}_{number}.csv")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{CLAIM_TRIES} reports named {stem} already")


def _csv_text(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
