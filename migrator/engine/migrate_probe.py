"""The migrate no-op probe: settle `migrate ACCOUNT` without SQLAlchemy, imapclient or MSAL when
the full path would provably do nothing and report all-OK.

The pull side is the backup probe's rule (engine/imap/noop_probe.py); the push and verify side
is verify/quick_gate.py, signed in with a still-valid token read from MSAL's cache file
(token_cache_read.py) or the target's password. Source and target are asked at the same time
(two threads), so the two connections' latencies overlap, and meanwhile the archive side of the
answer is worked out (quick_gate.ArchiveSide.foresee); a source with mail to pull (a delta
pass) sends the run to the full path at once, not after the target's answer. The run rows are
written as the full path writes them (migrate, pull, push), with the same counts;
verified_folders is left as the full path leaves it when nothing was compared again
(untouched). At any doubt or error: None, logged at -vv, and the full path runs.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from migrator.archive import lite_push
from migrator.archive.lite import LiteManifest, utcnow
from migrator.auth import default_scopes
from migrator.config import Account, Settings
from migrator.engine.events import Emit, Notice, TaskAdvanced, TaskFinished, TaskStarted
from migrator.engine.imap.noop_probe import open_settled, source_unchanged
from migrator.engine.results import JobResult
from migrator.engine.verify.quick_gate import (
    ArchiveSide,
    Settled,
    TargetLook,
    look_at_target,
    settled,
)
from migrator.targets import target_identity
from migrator.token_cache_read import cached_access_token

log = logging.getLogger(__name__)
PUSH_KEYS = ("pushed", "already_there", "merged", "refused", "failed", "bytes", "seconds")
VERIFY_KEYS = ("present", "missing", "refused", "duplicates", "extras", "missing_folders")


def probe_migrate(account: Account, settings: Settings, emit: Emit) -> JobResult | None:
    """The result of a migrate (with verify) that would change nothing, its runs recorded;
    or None when that cannot be proved. The caller holds the account's lock."""
    target = account.target
    if target is None:
        return _declined(account, "no target")
    token = None
    if target.auth == "xoauth2":
        if target.oauth is None:
            return _declined(account, "no OAuth settings")
        token = cached_access_token(target.oauth, default_scopes(target.oauth))
        if token is None:
            return _declined(account, "no cached access token valid for 5 more minutes")
    elif target.auth != "password" or target.password is None:
        return _declined(account, "the target signs in neither by password nor by token")
    started = utcnow()
    opened = open_settled(account, settings)
    if isinstance(opened, str):
        return _declined(account, opened)
    manifest, account_id = opened
    try:
        identity = target_identity(target)
        known = manifest.folders(account_id)
        recorded = lite_push.verified(manifest.connection, identity)
        source = _Side("source", lambda: source_unchanged(account, settings, known))
        look = _Side("target", lambda: look_at_target(account, token, sorted(recorded)))
        source.start()
        look.start()
        archive = ArchiveSide(account, settings, manifest.connection, account_id, identity,
                              known)
        archive.foresee(recorded)  # while both are asked
        unchanged = source.outcome()
        if isinstance(unchanged, str):  # mail to pull: the full path starts without waiting
            return _declined(account, unchanged)  # for the target (its look ends on its own)
        seen = look.outcome()
        if isinstance(seen, str):
            return _declined(account, seen)
        assert isinstance(unchanged, int) and isinstance(seen, TargetLook)
        found = settled(archive, seen, recorded)
        if isinstance(found, str):
            return _declined(account, found)
        result = _result(account, unchanged, found)
        _record(manifest, account_id, started, unchanged, result)
    except Exception as exc:  # anything unexpected: the full path will meet it and say it
        return _declined(account, exc.__class__.__name__)
    finally:
        manifest.close()
    log.debug("%s: no-op probe: nothing to pull, push or compare again; the full migrate "
              "was skipped", account.name)
    _events(account, emit, unchanged, found, result)
    return result


class _Side(threading.Thread):
    """One side's look, in a thread of its own; keeps its answer, or why it has none (an
    exception's name: a refused token, say, which the full path refreshes)."""

    def __init__(self, side: str, look: Callable[[], object]) -> None:
        super().__init__(name=f"probe-{side}", daemon=True)
        self._side, self._look = side, look
        self.answer: object = f"the {side} was not asked"

    def run(self) -> None:
        try:
            self.answer = self._look()
        except Exception as exc:
            self.answer = f"{self._side}: {exc.__class__.__name__}"

    def outcome(self) -> object:
        self.join()
        return self.answer


def _declined(account: Account, reason: str) -> JobResult | None:
    """Log why the probe leaves this run to the full path (-vv); None, for the caller."""
    log.debug("%s: migrate no-op probe declined (%s); the full migrate runs", account.name,
              reason)
    return None


def _totals(found: Settled) -> dict[str, int]:
    """verify's TargetReport.totals over the recorded figures (FolderCheck.restored of each
    folder: every one skipped, not compared again)."""
    figures = found.figures

    def added(key: str) -> int:
        return sum(int(f.get(key, 0)) for f in figures)

    def listed(key: str) -> int:
        return sum(len(f.get(key, [])) for f in figures)

    return {"folders": len(figures), "expected": added("expected"),
            "at_target": added("at_target"), "present": added("present"),
            "missing": listed("missing"), "refused": listed("refused"),
            "duplicates": added("duplicates"), "extras": added("extras"),
            "merged": added("merged"), "changed": listed("changed"),
            "missing_folders": sum(bool(f.get("folder_missing")) for f in figures),
            "folders_skipped": len(figures)}


def _result(account: Account, unchanged: int, found: Settled) -> JobResult:
    """What migrate_account returns for the same no-op (engine/migrate.py `merge`)."""
    result = JobResult(account.name, "migrate")
    if unchanged:
        result.counts["pull_folders_unchanged"] = unchanged
    for key in PUSH_KEYS:
        result.counts[f"push_{key}"] = 0
    totals = _totals(found)
    for key in VERIFY_KEYS:
        result.counts[f"verify_{key}"] = totals[key]
    return result


def _record(manifest: LiteManifest, account_id: int, started: Any, unchanged: int,
            result: JobResult) -> None:
    """The runs the full path leaves: migrate (opened first), pull, push."""
    pull = {"folders_unchanged": unchanged} if unchanged else {}
    push = {key: 0 for key in PUSH_KEYS}
    manifest.record_run(account_id, "migrate", started, Counter(result.counts))
    manifest.record_run(account_id, "pull", started, pull)
    manifest.record_run(account_id, "push", started, push)


def _events(account: Account, emit: Emit, unchanged: int, found: Settled,
            result: JobResult) -> None:
    """The progress events of the full path's three stages."""
    name = account.name
    emit(TaskStarted("pull", name))  # both start at once, as the pull's thread and the push
    emit(TaskStarted("push", name, 0, 0))
    emit(TaskFinished("pull", name, {"outcome": "ok", **(
        {"folders_unchanged": unchanged} if unchanged else {})}))
    emit(TaskFinished("push", name, {"outcome": "ok", **{key: 0 for key in PUSH_KEYS}}))
    for note in found.notes:
        emit(Notice("info", f"folder {note}", name))
    emit(TaskStarted("verify", name, found.live))
    for figures in found.figures:
        emit(TaskAdvanced("verify", name, int(figures.get("expected", 0))))
    emit(TaskFinished("verify", name, {"outcome": "ok", **_totals(found)}))
