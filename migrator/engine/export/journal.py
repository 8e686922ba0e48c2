"""DEST's own record of an export: which folder went where and which messages are complete.

`DEST/.migrator-export` is an append-only file of JSON lines (mail clients skip dotfiles):
a header (format, account), `{"folder", "path"}` once per folder, `{"done", "keys"}` after
each batch of messages is durable, and for mbox `{"intent", "start"}` before a batch is
appended and, with its `done`, `"end"` (the file's length) and `"flags"` (each message's flags
at export time, keyed as the mbox reader keys it: sources/files/exported.py reads them back;
journals written before had no `flags` and still open). Each append is fsynced. A line cut
short by a kill is dropped when the journal is next opened.

Why a journal and not a look at the files: a message the user deleted from the export must
not come back, and an mbox may only be cut back to a length the journal proves is ours.
The journal is locked (flock) while an export runs, so two exports never write one DEST.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.errors import ExitStatus, LockedError, MigratorError, StorageError
from migrator.sources.files.exported import JOURNAL_NAME as NAME
from migrator.sources.files.exported import JOURNAL_VERSION as VERSION


class ForeignDestination(MigratorError):
    """DEST holds something else than an export of this account in this format."""

    exit_status = ExitStatus.USAGE


@dataclass
class MboxState:
    end: int = 0  # length of the file when its last batch was committed
    intent: int | None = None  # start of a batch begun and not committed


@dataclass
class Journal:
    dest: Path
    fd: int
    paths: dict[str, str] = field(default_factory=dict)  # folder name -> path in DEST
    done: dict[str, set[str]] = field(default_factory=dict)  # folder name -> keys
    mbox: dict[str, MboxState] = field(default_factory=dict)  # path -> state
    twins: dict[str, Counter[str]] = field(default_factory=dict)  # mbox path -> stored SHAs
    flags: dict[str, dict[str, str]] = field(default_factory=dict)  # mbox path -> key -> flags

    def note_flags(self, path: str, stored_sha: str, flags: str) -> None:
        """An mbox message (SHA-256 as stored) was appended; its flags go with the batch."""
        twins = self.twins.setdefault(path, Counter())
        twins[stored_sha] += 1
        key = stored_sha if twins[stored_sha] == 1 else f"{stored_sha}.{twins[stored_sha]}"
        self.flags.setdefault(path, {})[key] = flags

    def assign(self, folders: dict[str, str]) -> None:
        """Record where new folders go (before anything is written there)."""
        self.paths.update(folders)
        self._append([{"folder": name, "path": path} for name, path in folders.items()])

    def intend(self, path: str, start: int) -> None:
        """An mbox batch will be appended to `path` from `start` on."""
        self.mbox.setdefault(path, MboxState()).intent = start
        self._append([{"intent": path, "start": start}])

    def commit(self, folder: str, keys: list[str], end: int | None = None) -> None:
        """These messages of `folder` are durable in DEST (and its mbox is `end` long)."""
        record: dict[str, Any] = {"done": folder, "keys": keys}
        if end is not None:
            record["end"] = end
        pending = self.flags.pop(self.paths.get(folder, ""), None)
        if pending is not None:
            record["flags"] = pending
        self._append([record])
        self._apply(record, counted=True)

    def _apply(self, record: dict[str, Any], counted: bool = False) -> None:
        if "folder" in record:
            self.paths[record["folder"]] = record["path"]
        elif "intent" in record:
            self.mbox.setdefault(record["intent"], MboxState()).intent = record["start"]
        elif "done" in record:
            self.done.setdefault(record["done"], set()).update(record["keys"])
            if "end" in record:
                self.mbox[self.paths[record["done"]]] = MboxState(record["end"])
            if not counted and isinstance(record.get("flags"), dict):
                twins = self.twins.setdefault(self.paths[record["done"]], Counter())
                twins.update(key.partition(".")[0] for key in record["flags"])

    def _append(self, records: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        try:
            os.write(self.fd, data)  # O_APPEND: one write, so a kill cuts at most this line
            os.fsync(self.fd)
        except OSError as exc:
            raise StorageError(f"cannot write {self.dest / NAME}: {exc.strerror}") from None

    def close(self) -> None:
        os.close(self.fd)  # releases the flock


def open_journal(dest: Path, fmt: str, account: str) -> Journal:
    """Open (or start) DEST's journal for this export, locked; refuse a foreign DEST."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest / NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot write to {dest}: {exc.strerror}") from None
    try:
        _lock(fd, dest)
        journal = Journal(dest, fd)
        records = _read(fd)
        header = {"export": VERSION, "format": fmt, "account": account}
        if not records:
            _refuse_unknown_files(dest)
            journal._append([header])
        elif records[0] != header:
            raise ForeignDestination(f"{dest} holds {_describe(records[0])}; export "
                                     f"{account} as {fmt} into another directory")
        for record in records[1:]:
            journal._apply(record)
        return journal
    except BaseException:
        os.close(fd)
        raise


def _lock(fd: int, dest: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LockedError(f"another export is writing to {dest}") from None


def _read(fd: int) -> list[dict[str, Any]]:
    """The complete lines; a last line cut short by a kill is cut off the file too."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        os.ftruncate(fd, len(complete))
    try:
        return [json.loads(line) for line in complete.splitlines() if line]
    except ValueError:
        raise ForeignDestination(f"the export journal {NAME} is damaged: export into "
                                 "a new directory") from None


def _refuse_unknown_files(dest: Path) -> None:
    """A new export goes into an empty directory: never mix with (or overwrite) other files."""
    other = sorted(p.name for p in dest.iterdir() if p.name != NAME)
    if other:
        with contextlib.suppress(OSError):
            os.unlink(dest / NAME)
        raise ForeignDestination(f"{dest} is not empty and holds no migrator export "
                                 f"(it has {other[0]}); export into a new or empty directory")


def _describe(header: dict[str, Any]) -> str:
    if header.get("export") != VERSION:
        return "an export this migrator does not know"
    fmt = header.get("format")
    return f"{'an' if fmt == 'eml' else 'a'} {fmt} export of account {header.get('account')}"
