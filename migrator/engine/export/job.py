"""One export of one account into DEST: plan, place folders, write batches, journal them.

Order of durability per batch: the batch's files (or mbox bytes) are made durable, then the
journal records their keys. A kill before that record leaves files the next run recognises
(Maildir, eml) or an mbox tail it cuts off (mbox), never half a message and never one twice.
Kill points for the tests (migrator/testhook.py): `export-message` (a message written, its
batch not durable), `export-durable` (a batch durable, not journaled), `export-committed`.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from migrator.archive.blobs import BlobStore, sha256_hex
from migrator.archive.db import Manifest
from migrator.archive.runs import record_run
from migrator.engine.events import Emit, TaskAdvanced, TaskFinished, TaskStarted
from migrator.engine.export.eml import EmlFolder
from migrator.engine.export.files import Settler
from migrator.engine.export.journal import Journal, open_journal
from migrator.engine.export.maildir import MaildirFolder
from migrator.engine.export.mbox import MboxFolder
from migrator.engine.export.names import folder_path, variant
from migrator.engine.export.plan import FolderPlan, Item, Window, plan_export
from migrator.engine.push.message import delivery_date
from migrator.engine.results import JobResult
from migrator.errors import FolderError, StorageError
from migrator.testhook import kill_point

FORMATS = ("maildir", "mbox", "eml")
BATCH_MESSAGES = 500  # messages made durable (and journaled) together
BATCH_BYTES = 32 << 20


class FolderWriter(Protocol):
    """One folder of one format: `open` creates it (and recovers what a kill left), `add`
    writes a message (False: it was already there), `flush` makes the batch durable (an
    mbox returns its length for the journal), `close` lets go of any open file."""

    def open(self) -> None: ...
    def add(self, item: Item, data: bytes, when: datetime | None) -> bool: ...
    def flush(self) -> int | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class ExportRequest:
    account: str
    fmt: str
    dest: Path
    folders: list[str]  # shell patterns on the archived folder name; [] is every folder
    window: Window
    ids: frozenset[int] | None = None  # messages.id (`migrator search`); None: every message


def export_account(request: ExportRequest, manifest: Manifest, store: BlobStore,
                   emit: Emit) -> JobResult:
    """Export what the archive has and DEST lacks; the result counts and names failures."""
    with manifest.session() as session:
        plan = plan_export(session, request.account, request.folders, request.window,
                           request.ids)
    result = JobResult(request.account, "export")
    journal = open_journal(request.dest, request.fmt, request.account)
    try:
        with record_run(manifest, "export", request.account) as run:
            place_folders(journal, request.fmt, plan)
            Exporter(request, journal, store, emit, result).run(plan)
            run.counts.update(result.counts)
            if result.failures:
                run.partial()
    finally:
        journal.close()
    return result


def place_folders(journal: Journal, fmt: str, plan: list[FolderPlan]) -> None:
    """Give each new folder a path no other folder holds; known folders keep theirs."""
    used = set(journal.paths.values())
    new = {}
    for folder in sorted(plan, key=lambda f: f.name):
        if folder.name in journal.paths:
            continue
        base = path = folder_path(fmt, folder.name, folder.delimiter)
        number = 2
        while path in used:
            path, number = variant(base, number), number + 1
        used.add(path)
        new[folder.name] = path
    if new:
        journal.assign(new)


class Exporter:
    """Writes the planned folders one after another, in batches."""

    def __init__(self, request: ExportRequest, journal: Journal, store: BlobStore,
                 emit: Emit, result: JobResult) -> None:
        self.request = request
        self.journal = journal
        self.store = store
        self.emit = emit
        self.result = result
        self.counts: Counter[str] = result.counts
        self.settler = Settler(request.dest)

    def run(self, plan: list[FolderPlan]) -> None:
        todo = {f.name: [i for i in f.items if i.key not in self.journal.done.get(f.name, ())]
                for f in plan}
        self.counts["already_exported"] = sum(len(f.items) for f in plan) - sum(
            len(items) for items in todo.values())
        self.emit(TaskStarted("export", self.request.account,
                              total=sum(len(items) for items in todo.values()),
                              total_bytes=sum(i.size for items in todo.values() for i in items)))
        for folder in plan:
            try:
                self.folder(folder.name, todo[folder.name])
            except FolderError as exc:
                self.result.fail(f"{folder.name}: {exc}")
            except OSError as exc:
                raise StorageError(f"cannot write to {self.request.dest}: "
                                   f"{exc.strerror or exc}") from None
        self.emit(TaskFinished("export", self.request.account, dict(self.counts)))

    def writer(self, folder: str) -> FolderWriter:
        dest, path = self.request.dest, self.journal.paths[folder]
        if self.request.fmt == "mbox":
            return MboxFolder(dest, path, self.settler, self.counts, self.journal)
        if self.request.fmt == "maildir":
            return MaildirFolder(dest, path, self.settler, self.counts)
        return EmlFolder(dest, path, self.settler, self.counts)

    def folder(self, name: str, items: list[Item]) -> None:
        writer = self.writer(name)
        try:
            writer.open()
            self.counts["folders"] += 1
            keys: list[str] = []
            size = 0
            for item in items:
                if self.message(writer, name, item):
                    keys.append(item.key)
                    size += item.size
                if len(keys) >= BATCH_MESSAGES or size >= BATCH_BYTES:
                    self.commit(writer, name, keys)
                    keys, size = [], 0
            self.commit(writer, name, keys)
        finally:
            writer.close()

    def message(self, writer: FolderWriter, folder: str, item: Item) -> bool:
        """Write one message; False if it is not to be recorded (failed, or out of range)."""
        data = self.read(folder, item)
        if data is None:
            return False
        when = item.internaldate or delivery_date(data)
        if item.internaldate is None and not self.request.window.admits(when):
            return False  # no INTERNALDATE (POP3): its headers' date decides
        written = writer.add(item, data, when)
        self.counts["exported" if written else "found_complete"] += 1
        self.counts["bytes"] += len(data) if written else 0
        self.emit(TaskAdvanced("export", self.request.account, 1, item.size))
        kill_point("export-message")
        return True

    def read(self, folder: str, item: Item) -> bytes | None:
        """The archived bytes, proven intact; a missing or damaged blob is a failure."""
        try:
            data = read_blob(self.store, item.sha256)
        except StorageError as exc:
            self.result.fail(f"{folder}: {exc}")
            return None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            self.result.fail(f"{folder}: blob {item.sha256} cannot be read: {exc}")
            return None
        if sha256_hex(data) != item.sha256:
            self.result.fail(f"{folder}: blob {item.sha256} no longer matches its SHA-256: "
                             "not exported (see `migrator verify --archive`)")
            return None
        return data

    def commit(self, writer: FolderWriter, folder: str, keys: list[str]) -> None:
        end = writer.flush()
        kill_point("export-durable")
        if keys:
            self.journal.commit(folder, keys, end)
            kill_point("export-committed")


def read_blob(store: BlobStore, sha: str) -> bytes:
    """A blob's bytes: the plain file straight away (the common case, one open), else the
    store's own lookup (compressed, or missing: its error names the blob)."""
    try:
        fd = os.open(os.path.join(store.objects, sha[:2], sha[2:] + ".eml"),
                     os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return store.read(sha)
    with open(fd, "rb") as handle:
        return handle.read()
