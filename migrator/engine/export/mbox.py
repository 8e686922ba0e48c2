"""mbox (mboxrd): one file per folder, each message after a `From ` line, reversibly quoted.

Every line of a message matching `>*From ` gets one more `>`; removing one `>` from every
line matching `>+From ` gives the message back byte for byte. After each message comes one
empty line (`\\n`); a message whose last line has no line break gets one first (the only byte
mbox cannot do without; counted as `newline_added`). The `From ` line carries the
INTERNALDATE in UTC. Flags are not written into the file (Status/X-Status headers would alter
the message): the journal records each message's flags at export time, keyed by the SHA-256 of
the message as stored here, and the mbox reader takes them from there. A later export appends
only new messages, so a flag changed since is not recorded again.

Appends survive a kill: the journal records the file's length before a batch (`intent`) and
after it is fsynced (`done`); a resumed export cuts a tail that only an unfinished batch can
have left. A file whose length matches neither was changed by someone else (a mail client):
it is left alone and the folder is reported as failed.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from migrator.archive.blobs import sha256_hex
from migrator.durable import write_all
from migrator.engine.export.files import FILE_MODE, Settler, make_dirs
from migrator.engine.export.journal import Journal, MboxState
from migrator.engine.export.plan import Item
from migrator.errors import FolderError

_FROM = re.compile(rb"^(>*From )", re.MULTILINE)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_line(when: datetime | None) -> bytes:
    """`From MAILER-DAEMON Thu Dec  3 07:21:47 2026` (asctime, UTC, English names)."""
    t = (when or EPOCH).astimezone(UTC)
    return (f"From MAILER-DAEMON {_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:2d} "
            f"{t:%H:%M:%S} {t.year}\n").encode("ascii")


def quote(data: bytes) -> bytes:
    if b"From " not in data:  # a C-level search spares most messages the regex (its CPU
        return data           # was half of an mbox export's)
    return _FROM.sub(rb">\1", data)


def entry(data: bytes, when: datetime | None) -> tuple[bytes, bool]:
    """The bytes one message takes in an mbox, and whether a final line break was added."""
    missing = not data.endswith(b"\n")
    return from_line(when) + quote(data) + (b"\n\n" if missing else b"\n"), missing


def stored_sha(item: Item, data: bytes, added: bool) -> str:
    """SHA-256 of the message as the mbox reader will find it (quoted, and with the line
    break it lacked). Most messages are stored unchanged: their SHA-256 is known already."""
    if not added and b"From " not in data:
        return item.sha256
    return sha256_hex(quote(data) + (b"\n" if added else b""))


class MboxChanged(FolderError):
    """The mbox file is not as the last export left it."""


class MboxFolder:
    def __init__(self, dest: Path, path: str, settler: Settler, counts: Counter[str],
                 journal: Journal) -> None:
        self.file = dest / path
        self.path = path
        self.settler = settler
        self.counts = counts
        self.journal = journal
        self.fd = -1
        self.offset = 0
        self.begun = False

    def open(self) -> None:
        self._parents()
        self.fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self.settler.dirs.add(self.file.parent)
        state = self.journal.mbox.get(self.path, MboxState())
        size = os.fstat(self.fd).st_size
        if size != state.end:
            if size < state.end or state.intent != state.end:
                raise MboxChanged(f"{self.file} was changed since the last export ({size} "
                                  f"bytes, the export left {state.end}): not appending to it")
            os.ftruncate(self.fd, state.end)  # the tail of a batch a kill interrupted
            os.fsync(self.fd)
        self.offset = state.end

    def _parents(self) -> None:
        """`A.sbd/B` needs the directory and, for Thunderbird, an mbox file `A` (maybe empty)."""
        make_dirs(self.file.parent, self.settler)
        parent = self.file.parent
        while parent != self.settler.dest:
            mbox = parent.with_name(parent.name.removesuffix(".sbd"))
            os.close(os.open(mbox, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
            parent = parent.parent

    def add(self, item: Item, data: bytes, when: datetime | None) -> bool:
        if not self.begun:
            self.journal.intend(self.path, self.offset)  # durable before any byte is appended
            self.begun = True
        chunk, added = entry(data, when)
        os.lseek(self.fd, self.offset, os.SEEK_SET)
        write_all(self.fd, chunk)
        self.offset += len(chunk)
        if added:
            self.counts["newline_added"] += 1
        self.journal.note_flags(self.path, stored_sha(item, data, added), item.flags)
        return True

    def flush(self) -> int | None:
        if self.begun:
            os.fsync(self.fd)
            self.begun = False
        self.settler.settle()
        return self.offset

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
