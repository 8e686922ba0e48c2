"""`migrate`: pull and push pipelined, then verify.

The pull runs in a thread and commits its batches as usual; the push reads the manifest for
what the pull has committed (woken by each commit) and starts sending while the pull goes on,
so the slower side sets the pace instead of the sum of both. When the pull has ended and the
push has caught up, the archive is verified against the target; messages this push appended
are recognised by the UIDs the target gave them (APPENDUID), without fetching them again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.runs import record_run
from migrator.config import Account
from migrator.engine.events import Emit, Event, TaskAdvanced, TaskStarted, TaskTotals
from migrator.engine.pull import pull_account
from migrator.engine.push.job import push_account
from migrator.engine.results import JobResult
from migrator.engine.verify.listings import Listings
from migrator.engine.verify.target import TargetReport, verify_target
from migrator.errors import ConfigError, ExitStatus, MigratorError
from migrator.targets.control import TargetControl
from migrator.wire import imapconn

log = logging.getLogger(__name__)


class PullThread(threading.Thread):
    """The pull of a migrate, in the background; keeps its result or its exception."""

    def __init__(self, account: Account, manifest: Manifest, store: BlobStore,
                 emit: Emit) -> None:
        super().__init__(name=f"pull-{account.name}", daemon=True)
        self.committed = threading.Event()  # set by every commit, and at the end
        self.fetching = threading.Event()  # set once it has found mail to fetch, or ended
        self.args_ = (account, manifest, store, self._signalling(emit))
        self.result: JobResult | None = None
        self.error: BaseException | None = None

    def _signalling(self, emit: Emit) -> Emit:
        def relay(event: Event) -> None:
            emit(event)
            if isinstance(event, TaskAdvanced) and event.task == "pull":
                self.committed.set()  # the push has new rows to read
                self.fetching.set()
            elif isinstance(event, TaskStarted | TaskTotals) and event.task == "pull" \
                    and event.total:
                self.fetching.set()  # planned: messages are coming
        return relay

    def run(self) -> None:
        try:
            self.result = pull_account(*self.args_)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc
        finally:
            self.committed.set()
            self.fetching.set()

    def outcome(self) -> JobResult:
        account = self.args_[0]
        if self.result is not None:
            return self.result
        if isinstance(self.error, MigratorError):
            return JobResult(account.name, "pull", error=str(self.error),
                             exit_status=self.error.exit_status)
        raise self.error or RuntimeError("pull ended without a result")


def migrate_account(account: Account, manifest: Manifest, store: BlobStore, emit: Emit,
                    *, verify: bool = True) -> JobResult:
    """Pull, push (pipelined) and verify one account."""
    if account.target is None:
        raise ConfigError(f"{account.name}: no [accounts.{account.name}.target] in the config")
    result = JobResult(account.name, "migrate")
    with record_run(manifest, "migrate", account.name, account.source.kind) as run:
        pull = PullThread(account, manifest, store, emit)
        pull.start()
        # one control connection for the push and the verify after it: a no-op re-run
        # pays one sign-in at the target, not two
        control = TargetControl(account.target, account.name,
                                imapconn.tokens_for(account.target, account.name))
        appended: dict[int, int] = {}  # what this push appended, for the verification
        listings = Listings()  # the push's last look at its folders, for the same
        try:
            try:
                pushed = push_account(account, manifest, store, emit,
                                      source_done=lambda: not pull.is_alive(), control=control,
                                      committed=pull.committed, fetching=pull.fetching,
                                      appended=appended if verify else None,
                                      listings=listings if verify else None)
            finally:
                pull.join()
            pulled = pull.outcome()
            merge(result, "pull", pulled)
            merge(result, "push", pushed)
            if verify and pulled.error is None:
                report = verify_target(account, manifest, store, emit, control=control,
                                       appended=appended, listings=listings)
                merge_report(result, report)
        finally:
            control.close()
        run.counts.update(result.counts)
        if result.error:  # a stage stopped early: the mailbox is not migrated
            run.outcome, run.error = "failed", result.error
        elif result.failures:
            run.partial()
    return result


def merge(result: JobResult, stage: str, part: JobResult) -> None:
    """Fold one stage's result into the migrate result (counts prefixed by the stage)."""
    for key, value in part.counts.items():
        result.counts[f"{stage}_{key}"] += value
    for line in part.failures:
        result.fail(f"{stage}: {line}")
    if part.error is not None:
        result.error = f"{stage}: {part.error}" if result.error is None else result.error
    result.exit_status = max(result.exit_status, part.exit_status)


def merge_report(result: JobResult, report: TargetReport) -> None:
    totals = report.totals()
    for key in ("present", "missing", "refused", "duplicates", "extras", "missing_folders"):
        result.counts[f"verify_{key}"] = totals[key]
    for folder in report.folders:
        if folder.folder_missing:
            result.fail(f"verify: folder missing at the target: {folder.target}")
        for ref in folder.missing:
            result.fail(f"verify: missing in {folder.target}: {ref}")
        if folder.duplicates:
            result.fail(f"verify: {folder.duplicates} duplicate(s) in {folder.target}")
    if not report.ok:  # refused messages alone leave it PARTIAL (the push said so)
        result.exit_status = max(result.exit_status, ExitStatus.VERIFY)


def summary(result: JobResult) -> dict[str, Any]:
    counts = result.counts
    return {"pulled": counts.get("pull_fetched", 0), "pushed": counts.get("push_pushed", 0),
            "already_there": counts.get("push_already_there", 0),
            "refused": counts.get("push_refused", 0), "failed": counts.get("push_failed", 0),
            "missing": counts.get("verify_missing", 0)}
