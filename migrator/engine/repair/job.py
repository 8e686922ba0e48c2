"""`repair ACCOUNT`: find the account's missing or corrupted blobs and fetch them again.

Only blob files change: manifest rows stay as they are, since the repaired blob has exactly
the content its name (the SHA-256 every row refers to) says. What the source no longer has
is reported, one line per blob, naming every message that points at it.
"""

from __future__ import annotations

import time

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.runs import record_run
from migrator.config import Account
from migrator.engine.events import Emit, Notice, TaskAdvanced, TaskFinished, TaskStarted
from migrator.engine.repair.damage import Damaged, Restorer, find_damaged
from migrator.engine.repair.sources import from_imap, from_pop3
from migrator.engine.results import JobResult


def repair_account(account: Account, manifest: Manifest, store: BlobStore,
                   emit: Emit) -> JobResult:
    result = JobResult(account.name, "repair")
    started = time.monotonic()
    with record_run(manifest, "repair", account.name, account.source.kind) as run:
        emit(TaskStarted("repair", account.name, 0))
        damaged = find_damaged(manifest, store, account.name,
                               lambda size: emit(TaskAdvanced("repair", account.name, 0, size)))
        result.counts.update(damaged=len(damaged), repaired=0, not_repaired=0)
        if damaged:
            _repair(account, store, damaged, result, emit)
        result.counts["seconds"] = round(time.monotonic() - started)
        run.counts.update(result.counts)
        if result.failures:
            run.partial()
        emit(TaskFinished("repair", account.name, {"outcome": result.outcome,
                                                   **dict(result.counts)}))
    return result


def _repair(account: Account, store: BlobStore, damaged: list[Damaged], result: JobResult,
            emit: Emit) -> None:
    restorer = Restorer(store, damaged)
    fetch = from_pop3 if account.source.kind == "pop3" else from_imap
    if account.source.is_file:
        from migrator.engine.files.repair import from_files

        fetch = from_files
    problems = fetch(account, damaged, restorer)
    store.sync()
    for _folder, reason in sorted(problems.items()):
        emit(Notice("warning", reason, account.name))
    left = restorer.missing()
    result.counts["repaired"] = len(damaged) - len(left)
    result.counts["not_repaired"] = len(left)
    for item in damaged:
        if item.sha256 in left:
            where = "; ".join(copy.describe() for copy in item.copies)
            result.fail(f"{item.state} blob {item.sha256} not repaired: the source no longer "
                        f"has this content ({where})")
