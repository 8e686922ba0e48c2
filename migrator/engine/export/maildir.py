"""Maildir: one file per message in the folder's `cur/`, flags in the info suffix.

Files are written in `tmp/` and renamed into `cur/` as the Maildir spec asks. Their unique
part is fixed by the message, so a resumed export finds what it wrote before its journal
said so; a flag the user changed since (a rename of the info suffix) does not hide it.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path

from migrator.engine.export.files import Settler, clear_temps, make_dirs, place
from migrator.engine.export.names import maildir_info, maildir_unique
from migrator.engine.export.plan import Item


class MaildirFolder:
    def __init__(self, dest: Path, path: str, settler: Settler, counts: Counter[str]) -> None:
        self.root = dest / path if path else dest
        self.cur, self.tmp = str(self.root / "cur"), str(self.root / "tmp")
        self.settler = settler
        self.present: set[str] = set()

    def open(self) -> None:
        for sub in ("cur", "new", "tmp"):
            make_dirs(self.root / sub, self.settler)
        if self.root != self.settler.dest and not (self.root / "maildirfolder").exists():
            # Maildir++ marks a subfolder so deliveries know its quota root (Courier, Dovecot)
            (self.root / "maildirfolder").touch()
            self.settler.written(str(self.root / "maildirfolder"), str(self.root))
        clear_temps(self.root / "tmp")
        self.present = {name.partition(":")[0] for sub in ("cur", "new")
                        for name in os.listdir(self.root / sub)}

    def add(self, item: Item, data: bytes, when: datetime | None) -> bool:
        """Write the message unless a file of it is already there; True if written."""
        unique = maildir_unique(when, item.key)
        if unique in self.present:
            return False
        final = os.path.join(self.cur, unique + maildir_info(item.flags))
        place(self.tmp, final, data, when)
        self.settler.written(final, self.cur)
        self.present.add(unique)
        return True

    def flush(self) -> int | None:
        self.settler.settle()
        return None

    def close(self) -> None:
        """Nothing held open."""
