"""Batch reports: a CSV and a JSON file per run, one row per mailbox, no secrets in them.

Rows hold counts, states and reasons only; secret references never appear (the report is
built from outcomes, not from the config).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from migrator.engine.batch import MailboxOutcome

REPORT_COLUMNS = ("line", "account", "state", "found", "archived", "pushed", "already_present",
                  "refused", "failed", "bytes", "verified", "seconds", "error", "failures")


def report_row(outcome: MailboxOutcome) -> dict[str, object]:
    counts = outcome.counts
    return {
        "line": outcome.line, "account": outcome.account, "state": outcome.state,
        "found": counts.get("found", 0), "archived": counts.get("fetched", 0),
        "pushed": counts.get("pushed", 0), "already_present": counts.get("already_present", 0),
        "refused": counts.get("refused", 0),
        "failed": max(counts.get("failed", 0), len(outcome.failures)),
        "bytes": counts.get("bytes", 0),
        "verified": "" if outcome.verified is None else ("yes" if outcome.verified else "no"),
        "seconds": round(outcome.seconds, 1), "error": outcome.error or "",
        "failures": " | ".join(outcome.failures),
    }


def write_reports(directory: Path, outcomes: Sequence[MailboxOutcome],
                  started: datetime) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"batch-{started.strftime('%Y%m%d-%H%M%S')}"
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    rows = [report_row(outcome) for outcome in outcomes]
    _atomic_write(csv_path, _csv_text(rows))
    _atomic_write(json_path, json.dumps({"started": started.isoformat(), "mailboxes": rows},
                                        indent=2) + "\n")
    return csv_path, json_path


def _csv_text(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
