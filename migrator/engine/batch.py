"""Run many mailboxes at once, each isolated: one mailbox's failure never stops the others.

The runner knows nothing of what a mailbox job does (pull, or pull + push + verify); it only
schedules them on a bounded pool and turns every way a job can end into a MailboxOutcome.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from migrator.batchfile import BatchRow
from migrator.config import Account
from migrator.diskfull import disk_full, is_disk_full
from migrator.engine.events import Emit, Notice
from migrator.engine.results import JobResult
from migrator.errors import ExitStatus, LockedError, MigratorError, unexpected_error_text

log = logging.getLogger(__name__)

MailboxJob = Callable[[Account], Sequence[JobResult]]


@dataclass
class MailboxOutcome:
    """How one mailbox of a batch ended, in the words of the report."""

    line: int
    account: str
    state: str  # complete | partial | failed | locked | invalid
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    verified: bool | None = None
    found: int | None = None  # messages at the source, as the manifest last saw them
    exit_status: ExitStatus = ExitStatus.OK

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "account": self.account, "state": self.state,
                **dict(self.counts), "verified": self.verified, "seconds": round(self.seconds, 1),
                "failures": list(self.failures), "error": self.error}


def outcome_of(row: BatchRow, results: Sequence[JobResult], seconds: float) -> MailboxOutcome:
    outcome = MailboxOutcome(row.line, row.name, "complete", seconds=seconds)
    for result in results:
        outcome.counts.update(result.counts)
        outcome.failures.extend(result.failures)
        outcome.error = outcome.error or result.error
        outcome.exit_status = max(outcome.exit_status, result.exit_status)
        if "verify_missing" in result.counts:  # the job compared archive and target
            outcome.verified = not (result.counts["verify_missing"]
                                    or result.counts.get("verify_duplicates", 0)
                                    or result.counts.get("verify_missing_folders", 0))
    if outcome.error:
        outcome.state = "failed"
    elif outcome.failures or outcome.verified is False:
        outcome.state = "partial"
    if outcome.state != "complete" and outcome.exit_status == ExitStatus.OK:
        outcome.exit_status = ExitStatus.PARTIAL
    return outcome


def run_mailbox(row: BatchRow, job: MailboxJob, emit: Emit) -> MailboxOutcome:
    """One mailbox, whatever happens inside it (a bug included) is recorded against its row."""
    if row.account is None:
        return MailboxOutcome(row.line, row.name, "invalid", error=row.error,
                              exit_status=ExitStatus.CONFIG)
    started = time.monotonic()
    try:
        results = job(row.account)
    except LockedError as exc:
        return MailboxOutcome(row.line, row.name, "locked", error=str(exc),
                              exit_status=exc.exit_status)
    except MigratorError as exc:
        outcome = MailboxOutcome(row.line, row.name, "failed", error=str(exc),
                                 exit_status=exc.exit_status)
    except Exception as exc:  # isolation: a crash in one mailbox must not stop the batch
        outcome = crashed(row, exc)
    else:
        return outcome_of(row, results, time.monotonic() - started)
    outcome.seconds = time.monotonic() - started
    emit(Notice("error", outcome.error or "failed", row.name))
    return outcome


def crashed(row: BatchRow, exc: Exception) -> MailboxOutcome:
    """A mailbox ended by an unexpected exception: a bug, unless it is a full disk."""
    if is_disk_full(exc):
        full = disk_full(f"{row.name}: cannot write to the archive", exc)
        return MailboxOutcome(row.line, row.name, "failed", error=str(full),
                              exit_status=full.exit_status)
    # the traceback (and a database error's SQL and parameters) only with -vv: the report,
    # `batch status` and the terminal get one line
    log.debug("%s: unexpected error", row.name, exc_info=True)
    return MailboxOutcome(row.line, row.name, "failed",
                          error=f"internal error: {unexpected_error_text(exc)}",
                          exit_status=ExitStatus.ERROR)


def run_batch(rows: Sequence[BatchRow], job: MailboxJob, parallel: int,
              emit: Emit) -> list[MailboxOutcome]:
    """Every row, `parallel` mailboxes at a time; outcomes in the CSV's order."""
    with ThreadPoolExecutor(max_workers=max(1, parallel),
                            thread_name_prefix="mailbox") as pool:
        futures = [pool.submit(run_mailbox, row, job, emit) for row in rows]
        return [future.result() for future in futures]


def batch_status(outcomes: Sequence[MailboxOutcome]) -> ExitStatus:
    """OK only when every mailbox is complete (and verified where a target exists); STORAGE
    when the archive could not be written for one (a full disk stops every mailbox alike)."""
    if any(outcome.exit_status == ExitStatus.STORAGE for outcome in outcomes):
        return ExitStatus.STORAGE
    if all(outcome.state == "complete" for outcome in outcomes):
        return ExitStatus.OK
    return ExitStatus.PARTIAL
