"""The push side of the manifest through sqlite3 alone, for the migrate no-op probe.

Each query here is the sqlite3 form of the one named in engine/push/rows.py (SQLAlchemy),
over the same columns and conditions; tests/unit/test_lite_push.py runs both on one
manifest and compares them, so the two cannot drift apart unnoticed. Rows come back as
tuples in Candidate's column order (engine/push/candidate.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

DONE, FAILED, INTENT = "done", "failed", "intent"  # as engine/push/candidate.py

CANDIDATE_COLUMNS = ("m.id, m.folder_id, m.sha256, m.size, m.internaldate, m.flags, "
                     "m.message_id, p.state, p.target_folder, p.target_uidvalidity, "
                     "p.target_uid")
_WITH_PUSH = (f"SELECT {CANDIDATE_COLUMNS} FROM messages m LEFT OUTER JOIN pushes p "
              "ON p.archive_message_id = m.id AND p.target = ?")


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def pins(db: sqlite3.Connection, target: str, account_id: int) -> dict[str, str]:
    """`rows.pins`: source folder -> target folder of earlier pushes (the latest)."""
    rows = db.execute(
        "SELECT f.name, p.target_folder, max(p.id) FROM folders f "
        "JOIN messages m ON m.folder_id = f.id JOIN pushes p ON p.archive_message_id = m.id "
        "WHERE f.account_id = ? AND p.target = ? AND p.state IN (?, ?) "
        "GROUP BY f.name, p.target_folder ORDER BY max(p.id)",
        (account_id, target, DONE, INTENT))
    return {str(name): str(folder) for name, folder, _ in rows}


def anything_to_push(db: sqlite3.Connection, target: str, folder_ids: Iterable[int]) -> bool:
    """`rows.pending` finds a message, or a push row waits for an outcome (`intent`, which
    reconcile settles) or for another try (`failed`)."""
    ids = list(folder_ids)
    pending = db.execute(
        f"{_WITH_PUSH} WHERE m.folder_id IN ({_marks(ids)}) AND m.gone_at IS NULL "
        f"AND (p.id IS NULL OR p.state = ?) LIMIT 1", (target, *ids, FAILED)).fetchone()
    unsettled = db.execute("SELECT 1 FROM pushes WHERE target = ? AND state IN (?, ?) LIMIT 1",
                           (target, INTENT, FAILED)).fetchone()
    return pending is not None or unsettled is not None


def done_sources(db: sqlite3.Connection, target: str,
                 folder_ids: Iterable[int]) -> dict[str, set[int]]:
    """`rows.done_sources`: target folder -> source folders with live messages done there."""
    ids = list(folder_ids)
    rows = db.execute(
        "SELECT DISTINCT p.target_folder, m.folder_id FROM pushes p "
        "JOIN messages m ON m.id = p.archive_message_id "
        f"WHERE p.target = ? AND p.state = ? AND m.folder_id IN ({_marks(ids)}) "
        "AND m.gone_at IS NULL", (target, DONE, *ids))
    sources: dict[str, set[int]] = {}
    for folder, folder_id in rows:
        sources.setdefault(str(folder or ""), set()).add(int(folder_id))
    return sources


def expected_in(db: sqlite3.Connection, target: str, target_folder: str,
                planned: Iterable[int], pushed_from: Iterable[int]) -> list[tuple[Any, ...]]:
    """`rows.expected_in`: live messages pushed (done) to `target_folder`, or from a folder
    the plan sends there and not pushed (done) anywhere else."""
    planned = list(planned)
    ids = sorted({*planned, *pushed_from})
    return db.execute(
        f"{_WITH_PUSH} WHERE m.folder_id IN ({_marks(ids)}) AND m.gone_at IS NULL "
        "AND ((p.state = ? AND p.target_folder = ?) "
        f"OR (m.folder_id IN ({_marks(planned)}) "
        "AND (p.id IS NULL OR p.state != ? OR coalesce(p.target_folder, '') = ''))) "
        "ORDER BY m.id",
        (target, *ids, DONE, target_folder, *planned, DONE)).fetchall()


def live_count(db: sqlite3.Connection, folder_ids: Iterable[int]) -> int:
    """`rows.live_count`."""
    ids = list(folder_ids)
    (count,) = db.execute(f"SELECT count(id) FROM messages WHERE folder_id IN ({_marks(ids)}) "
                          "AND gone_at IS NULL", ids).fetchone()
    return int(count or 0)


def verified(db: sqlite3.Connection, target: str
             ) -> dict[str, tuple[tuple[int | None, ...], str, dict[str, Any]]]:
    """`archive.verified.load`: target folder -> ((UIDVALIDITY, UIDNEXT, MESSAGES,
    HIGHESTMODSEQ), archive digest, figures) as verify last found it complete."""
    rows = db.execute("SELECT folder, uidvalidity, uidnext, messages, highestmodseq, "
                      "archive_digest, report FROM verified_folders WHERE target = ?",
                      (target,))
    return {folder: ((validity, uidnext, messages, modseq), digest, json.loads(report))
            for folder, validity, uidnext, messages, modseq, digest, report in rows}
