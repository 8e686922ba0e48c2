"""Every job leaves a row in `runs`: what ran, when, its counts and how it ended."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from migrator.archive.db import Manifest
from migrator.archive.ingest import ensure_account
from migrator.archive.manifest import RunRow, utcnow
from migrator.errors import MigratorError, unexpected_error_text


@dataclass
class RunRecord:
    id: int
    counts: Counter[str] = field(default_factory=Counter)
    outcome: str = "ok"  # ok | partial | failed | interrupted
    error: str | None = None

    def partial(self) -> None:
        if self.outcome == "ok":
            self.outcome = "partial"


@contextmanager
def record_run(manifest: Manifest, command: str, account: str | None = None,
               source_kind: str = "") -> Iterator[RunRecord]:
    """Open a run row, yield a record to fill, and close the row however the job ends."""
    with manifest.session() as session:
        account_id = ensure_account(session, account, source_kind).id if account else None
        row = RunRow(account_id=account_id, command=command)
        session.add(row)
        session.flush()
        record = RunRecord(row.id)
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
        with manifest.session() as session:
            row = session.get_one(RunRow, record.id)
            row.finished_at = utcnow()
            row.outcome = record.outcome
            row.counts = json.dumps(dict(record.counts))
            row.error = record.error
