"""`pull`: copy what a source has and the archive lacks, whatever the source's protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrator.config import Account
from migrator.engine.events import Emit
from migrator.engine.results import JobResult

if TYPE_CHECKING:  # the manifest (SQLAlchemy) is loaded only by the job that uses it
    from migrator.archive.blobs import BlobStore
    from migrator.archive.db import Manifest


def pull_account(account: Account, manifest: Manifest, store: BlobStore, emit: Emit, *,
                 dry_run: bool = False) -> JobResult:
    """Pull one account into the archive; the result says what was done and what failed."""
    if account.source.is_file:
        from migrator.engine.files.pull import pull_files

        return pull_files(account, manifest, store, emit, dry_run=dry_run)
    if account.source.kind == "pop3":
        from migrator.engine.pop3.pull import pull_pop3

        return pull_pop3(account, manifest, store, emit, dry_run=dry_run)
    from migrator.engine.imap.pull import pull_imap

    return pull_imap(account, manifest, store, emit, dry_run=dry_run)
