"""Every job leaves a row in `runs`: what ran, when, its counts and how it ended."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from migrator.archive.db import Manifest
from migrator.archive.ingest import ensure_account
from migrator.archive.manifest import RunRow, utcnow
from migrator.errors import MigratorError, unexpected_error_text

RUNNING, DIED = "running", "died"
DIED_ERROR = "the process ended without closing this run (killed, or the machine stopped)"
# Runs this process has open, per manifest: a `migrate` opens its pull and push runs while
# its own is open, and a batch runs accounts side by side, so these are alive, not dead.
_open_runs: set[tuple[str, int]] = set()
_open_lock = threading.Lock()


@dataclass
class RunRecord:
    id: int
    counts: Counter[str] = field(default_factory=Counter)
    outcome: str = "ok"  # ok | partial | failed | interrupted (| died, set by a later run)
    error: str | None = None

    def partial(self) -> None:
        if self.outcome == "ok":
            self.outcome = "partial"


@contextmanager
def record_run(manifest: Manifest, command: str, account: str | None = None,
               source_kind: str = "") -> Iterator[RunRecord]:
    """Open a run row, yield a record to fill, and close the row however the job ends.

    Runs of the account left `running` by a process that died (kill -9, power loss) are
    marked `died` first: the caller holds the account's lock, so no other process can be
    running them."""
    key = str(manifest.engine.url)
    with manifest.session() as session:
        account_id = ensure_account(session, account, source_kind).id if account else None
        if account_id is not None:
            mark_dead_runs(session, account_id, _alive_ids(key))
        row = RunRow(account_id=account_id, command=command)
        session.add(row)
        session.flush()
        record = RunRecord(row.id)
    with _open_lock:
        _open_runs.add((key, record.id))
    try:
        yield record
    except KeyboardInterrupt:
        record.outcome = "interrupted"
        raise
    except MigratorError as exc:
        record.outcome, record.error = "failed", str(exc)
        raise
    except Exception as exc:
        record.outcome, record.error = "failed", unexpected_error_text(exc)
        raise
    finally:
        with _open_lock:
            _open_runs.discard((key, record.id))
        with manifest.session() as session:
            row = session.get_one(RunRow, record.id)
            row.finished_at = utcnow()
            row.outcome = record.outcome
            row.counts = json.dumps(dict(record.counts))
            row.error = record.error


def _alive_ids(key: str) -> set[int]:
    with _open_lock:
        return {run_id for manifest_key, run_id in _open_runs if manifest_key == key}


def mark_dead_runs(session: Session, account_id: int, alive: set[int]) -> list[int]:
    """Mark the account's `running` runs that are not in `alive` as `died`; their ids."""
    dead = [run_id for run_id in session.scalars(
        select(RunRow.id).where(RunRow.account_id == account_id, RunRow.outcome == RUNNING))
        if run_id not in alive]
    if dead:
        session.execute(update(RunRow).where(RunRow.id.in_(dead))
                        .values(outcome=DIED, error=DIED_ERROR))
    return dead
