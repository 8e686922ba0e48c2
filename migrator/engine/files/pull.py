"""`pull` for a file source (mbox, Maildir, .eml): import what the archive lacks, by key.

Each folder of the files is planned against the manifest by the reader's key (kept where
POP3 keeps its UIDL): a new key is read and handed to the archive writer, which makes the
blobs durable before their rows commit, so a run killed anywhere loses nothing and a re-run
adds nothing twice. A known key whose flags changed (a Maildir file renamed by a client) gets
its new flags; a key no longer in the files is marked gone, as a message expunged from an
IMAP server is, and back if it returns. A folder no longer in the files is marked gone too.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import select

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest
from migrator.archive.ingest import ensure_account
from migrator.archive.manifest import AccountRow, FailureRow, FolderRow, flags_text
from migrator.archive.runs import record_run
from migrator.archive.writer import ArchiveWriter, BatchStream, Tuning
from migrator.budget import ByteBudget
from migrator.config import Account, Endpoint
from migrator.engine.events import BatchedProgress, Emit, Notice, TaskFinished, TaskStarted
from migrator.engine.files import records
from migrator.engine.files.records import Imported, Stored
from migrator.engine.results import JobResult
from migrator.sources.files import FileFolder, FileMessage, FileSource, open_source
from migrator.testhook import kill_point

log = logging.getLogger(__name__)

TASK = "pull"
STAGE = "pull"
BATCH_MESSAGES = 1000  # messages per durable batch (blobs synced, then one transaction)
BATCH_BYTES = 64 * 1024 * 1024
UNWRITTEN_BYTES = 64 * 1024 * 1024  # read but not yet written
# Two writer threads: reading files is quick, so the writer (hash, write, per message) is
# what the reader waits for; hashing and writing release the GIL. 2,000 messages (33 MB) of
# mbox, three alternating runs each on this loaded 2-core machine, median: 1 thread 5.75 s,
# 2 threads 4.33 s, 3 threads 4.31 s.
TUNING = Tuning(threads=2, chunk_messages=16, chunk_bytes=1024 * 1024, queued_batches=2)


def included(name: str, endpoint: Endpoint) -> bool:
    """Shell-style `include`/`exclude` patterns on the folder's name (levels split by "/")."""
    return (any(fnmatchcase(name, pattern) for pattern in endpoint.include)
            and not any(fnmatchcase(name, pattern) for pattern in endpoint.exclude))


def pull_files(account: Account, manifest: Manifest, store: BlobStore, emit: Emit, *,
               dry_run: bool = False) -> JobResult:
    """Import one account's files into the archive (or, dry, count what that would add)."""
    result = JobResult(account.name, TASK)
    emit(TaskStarted(TASK, account.name))
    summary: dict[str, Any] = {"outcome": "failed"}
    source = open_source(account.source.kind, str(account.source.path))
    try:
        job = FileImport(account, manifest, store, emit, result, source)
        if dry_run:
            job.preview()
        else:
            with record_run(manifest, TASK, account.name, account.source.kind) as run:
                job.run_id = run.id
                try:
                    job.run()
                finally:
                    run.counts.update(result.counts)
                    if result.failures:
                        run.partial()
        summary = {**dict(result.counts), "outcome": result.outcome}
    finally:
        source.close()
        emit(TaskFinished(TASK, account.name, summary))
    return result


class FileImport:
    """One account's import; folder by folder, each planned against the manifest."""

    def __init__(self, account: Account, manifest: Manifest, store: BlobStore, emit: Emit,
                 result: JobResult, source: FileSource) -> None:
        self.account, self.manifest, self.store, self.emit = account, manifest, store, emit
        self.result, self.source = result, source
        self.run_id: int | None = None
        self.account_id = 0
        self.lock = threading.Lock()  # the writer's committer thread counts too
        self.progress = BatchedProgress(emit, TASK, account.name)

    def _chosen(self) -> tuple[set[str], list[FileFolder]]:
        folders = self.source.folders()
        return ({f.name for f in folders},
                [f for f in folders if included(f.name, self.account.source)])

    def run(self) -> None:
        present, chosen = self._chosen()
        with self.manifest.session() as session:
            self.account_id = ensure_account(session, self.account.name,
                                             self.account.source.kind).id
            ids = records.sync_folders(session, self.account_id, present,
                                       [f.name for f in chosen])
        for folder in chosen:
            self.result.counts["folders"] += 1
            try:
                self.folder(folder, ids[folder.name])
            except OSError as exc:
                self._failed(folder.name, None, f"cannot read the folder: {exc.strerror}")
        self.progress.flush()

    def folder(self, folder: FileFolder, folder_id: int) -> None:
        with self.manifest.session() as session:
            known = records.known_messages(session, folder_id)
        stream = self._stream(folder_id)
        seen: set[str] = set()
        changed: dict[int, str] = {}
        back: list[int] = []
        rekeyed: dict[int, str] = {}
        try:
            for message in self.source.messages(folder):
                key = records.stored_key(message.key)
                seen.add(key)
                flags = flags_text(message.flags)
                if key not in known:
                    _take_former_key(message, key, known, rekeyed)
                if key in known:
                    self._compare(known[key], flags, changed, back)
                    continue
                try:
                    data = message.read()
                except OSError as exc:
                    self._failed(folder.name, key, f"cannot read: {exc.strerror}")
                    continue
                stream.add(Imported(key, records.iso(message.internaldate), flags), data)
                self.progress.advance(len(data))
                kill_point("import-read")
        finally:
            stream.close()
        gone = [item.row_id for key, item in known.items() if key not in seen and not item.gone]
        with self.manifest.session() as session:
            records.rekey(session, rekeyed)
            records.update_known(session, changed, back, gone)
            records.finish_folder(session, folder_id, len(seen))
        for name, number in (("flags_changed", len(changed)), ("gone", len(gone)),
                             ("back", len(back))):
            if number:
                self.result.counts[name] += number

    def _compare(self, known: records.Known, flags: str, changed: dict[int, str],
                 back: list[int]) -> None:
        self.result.counts["already_archived"] += 1
        if known.flags != flags:
            changed[known.row_id] = flags
        if known.gone:
            back.append(known.row_id)

    def _stream(self, folder_id: int) -> BatchStream[Imported]:
        def record(stored: list[Stored]) -> None:
            with self.manifest.session() as session:
                added = records.record_rows(session, folder_id, stored)
            kill_point("import-committed")
            with self.lock:
                self.result.counts["fetched"] += added
                self.result.counts["bytes"] += sum(item.ref.size for item in stored)

        writer: ArchiveWriter[Imported] = ArchiveWriter(
            self.store, ByteBudget(UNWRITTEN_BYTES), TUNING)
        return BatchStream(writer, record, BATCH_MESSAGES, BATCH_BYTES)

    def _failed(self, folder: str, key: str | None, reason: str) -> None:
        line = f"{folder}" + (f" {key}" if key else "") + f": {reason}"
        self.emit(Notice("warning", line, self.account.name))
        with self.lock:
            self.result.fail(line)
            self.result.counts["failed"] += 1
        with self.manifest.session() as session:
            session.add(FailureRow(run_id=self.run_id, account_id=self.account_id,
                                   stage=STAGE, folder=folder, ref=key, reason=reason))

    def preview(self) -> None:
        """What a run would import; reads the manifest and the files, writes nothing."""
        _, chosen = self._chosen()
        counts: Counter[str] = Counter()
        with self.manifest.session() as session:
            account_id = session.scalars(select(AccountRow.id).where(
                AccountRow.name == self.account.name)).first()
            folders = {} if account_id is None else {row.name: row.id for row in session.scalars(
                select(FolderRow).where(FolderRow.account_id == account_id))}
            for folder in chosen:
                known = ({} if folder.name not in folders
                         else records.known_messages(session, folders[folder.name]))
                for message in self.source.messages(folder):
                    key = records.stored_key(message.key)
                    if key not in known:
                        _take_former_key(message, key, known, {})
                    if key in known:
                        counts["already_archived"] += 1
                    else:
                        counts["would_fetch"] += 1
                        counts["would_fetch_bytes"] += message.size
        counts["folders"] = len(chosen)
        self.result.counts.update(counts)


def _take_former_key(message: FileMessage, key: str, known: dict[str, records.Known],
                     rekeyed: dict[int, str]) -> None:
    """A message archived under a key the reader gave it before (see `former_keys`): its row
    moves to the new key (in `known` now, in the manifest with `rekeyed`), not imported
    again. (Two copies of one message differing only in those headers may swap rows for one
    run; the next sets them right, and neither is imported twice.)"""
    for former in map(records.stored_key, message.former_keys):
        found = known.get(former)
        if found is not None and found.row_id not in rekeyed:
            rekeyed[found.row_id] = key
            known[key] = known.pop(former)
            return

