"""The no-op probe: prove with the standard library alone that a pull has nothing to do.

A re-run that finds nothing new is the common case of a nightly backup, and most of its cost
is start-up (SQLAlchemy alone is more than the whole of the work). Before the full path, this
reads the manifest with sqlite3 and asks the source LIST and STATUS, and only when every
folder passes the pull's own `unchanged` rule, the folders are the ones the manifest knows,
and nothing is half-done or failed (the last run ended ok: so a password the server refuses
is tried once per run, not by the probe and again by the full path), records the run as the
full pull would and returns its result. At the slightest doubt it returns None and the full
path runs, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from migrator.archive import namespaces
from migrator.archive.lite import FolderRecord, LiteManifest, utcnow
from migrator.config import Account, Settings
from migrator.engine.events import Emit, TaskFinished, TaskStarted
from migrator.engine.imap.folder_state import FolderState, included, unchanged
from migrator.engine.results import JobResult
from migrator.sources.imap_folders import Folder
from migrator.sources.imap_quick import QuickSource

log = logging.getLogger(__name__)


def probe_pull(account: Account, settings: Settings, emit: Emit) -> JobResult | None:
    """The result of a pull that would change nothing, with its run recorded; or None when
    that cannot be proved (the caller then runs the full pull). The caller holds the lock."""
    started = utcnow()
    opened = open_settled(account, settings)
    if isinstance(opened, str):
        return _declined(account, opened)
    manifest, account_id = opened
    try:
        unchanged_folders = source_unchanged(account, settings, manifest.folders(account_id))
        if isinstance(unchanged_folders, str):
            return _declined(account, unchanged_folders)
        result = JobResult(account.name, "pull")
        result.counts.update({"folders_unchanged": unchanged_folders} if unchanged_folders
                             else {})
        manifest.record_run(account_id, "pull", started, result.counts)
    except Exception as exc:  # anything unexpected: the full path will meet it and say it
        return _declined(account, exc.__class__.__name__)
    finally:
        manifest.close()
    log.debug("%s: no-op probe: nothing changed at the source; the full pull was skipped",
              account.name)
    emit(TaskStarted("pull", account.name))
    emit(TaskFinished("pull", account.name, {"outcome": result.outcome, **result.counts}))
    return result


def open_settled(account: Account, settings: Settings) -> tuple[LiteManifest, int] | str:
    """The manifest, open, and the account's id when a probe may go on (`settled_before`);
    else why not, the manifest closed again. Both probes begin here."""
    manifest = LiteManifest.open(settings.archive.database)
    if manifest is None:
        return "the manifest is not an SQLite file at the newest schema"
    try:
        account_id = settled_before(account, manifest)
    except Exception as exc:  # anything unexpected: the full path will meet it and say it
        account_id = exc.__class__.__name__
    if isinstance(account_id, str):
        manifest.close()
        return account_id
    return manifest, account_id


def settled_before(account: Account, manifest: LiteManifest) -> int | str:
    """The account's id when the source may be probed at all (an IMAP source with a
    password, known to the manifest, nothing open, failed or half-done); else why not."""
    source = account.source
    if source.is_file or source.kind != "imap" or source.auth != "password":
        return "only IMAP sources with a password are probed"
    account_id = manifest.account_id(account.name)
    if account_id is None:
        return "the account is not in the manifest yet"
    if manifest.has_running_runs(account_id):
        return "a run is open (alive, or died without closing it)"
    if manifest.has_open_failures(account_id):
        return "earlier failures wait for a retry"
    if not manifest.last_run_ok(account_id):  # e.g. a refused password: one login only
        return "the last run did not end ok"
    return account_id


def _declined(account: Account, reason: str) -> JobResult | None:
    """Log why the probe leaves this run to the full path (-vv); None, for the caller."""
    log.debug("%s: no-op probe declined (%s); the full pull runs", account.name, reason)
    return None


def source_unchanged(account: Account, settings: Settings,
                     known: Mapping[str, FolderRecord]) -> int | str:
    """How many folders are unchanged, if all of them are (the pull would change no row);
    else why not."""
    quick = QuickSource(account.source)
    try:
        listed, statuses = quick.folders_with_status()
        server = f"{account.source.host}:{account.source.port}"
        if ("NAMESPACE" in quick.capabilities
                and namespaces.told_by(settings.archive.path, account.name) != server):
            return "the pull would ask NAMESPACE and record it"
        condstore = quick.condstore
    finally:
        quick.close()
    chosen = [f for f in listed if f.selectable and included(f.name, account.source)]
    if not _folder_rows_current(known, {f.name for f in listed}, chosen):
        return "folders were added, deleted or changed at the source"
    for folder in chosen:
        status = statuses.get(folder.raw_name)
        if status is None or not unchanged(_state(known[folder.name]), status, condstore):
            return f"{folder.name} changed"
    return len(chosen)


def _folder_rows_current(known: Mapping[str, FolderRecord], present: set[str],
                         chosen: list[Folder]) -> bool:
    """True when `records.sync_folders` would change no folder row: every chosen folder
    known, live and as LIST shows it; every known folder LIST no longer shows marked gone."""
    if any(name not in present and not row.gone for name, row in known.items()):
        return False
    for folder in chosen:
        row = known.get(folder.name)
        if (row is None or row.gone or row.raw_name != folder.raw_name
                or row.delimiter != folder.delimiter or row.special_use != folder.special_use):
            return False
    return True


def _state(row: FolderRecord) -> FolderState:
    """As `records.folder_state` makes it (no open failures: the probe declined those)."""
    return FolderState(folder_id=row.id, uidvalidity=row.uidvalidity, uidnext=row.uidnext,
                       highestmodseq=row.highestmodseq, message_count=row.message_count)

