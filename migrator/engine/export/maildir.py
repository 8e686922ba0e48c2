"""Maildir: one file per message in the folder's `cur/`, flags in the info suffix.

Files are written in `tmp/` and renamed into `cur/` as the Maildir spec asks. Their unique
part is fixed by the message, so a resumed export finds what it wrote before its journal
said so; a flag the user changed since (a rename of the info suffix) does not hide it.
Keywords (`$Forwarded`, `Work`) become the letters a-z of the folder's `dovecot-keywords`
map, as Dovecot keeps them (and an import reads them back); past 26 in a folder they are
not written.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path

from migrator.durable import atomic_write
from migrator.engine.export.files import FILE_MODE, Settler, clear_temps, make_dirs, place
from migrator.engine.export.names import maildir_info, maildir_unique
from migrator.engine.export.plan import Item

KEYWORD_LETTERS = 26  # a-z


class MaildirFolder:
    def __init__(self, dest: Path, path: str, settler: Settler, counts: Counter[str]) -> None:
        self.root = dest / path if path else dest
        self.cur, self.tmp = str(self.root / "cur"), str(self.root / "tmp")
        self.settler = settler
        self.present: set[str] = set()
        self.keywords: dict[str, int] = {}  # keyword -> index in dovecot-keywords

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
        final = os.path.join(self.cur, unique + maildir_info(item.flags)
                             + self._letters(item.flags))
        place(self.tmp, final, data, when)
        self.settler.written(final, self.cur)
        self.present.add(unique)
        return True

    def _letters(self, flags: str) -> str:
        """The keyword letters, in ASCII order; a new keyword is added to the map first."""
        names = [f for f in flags.split() if not f.startswith("\\")]
        new = [n for n in names if n not in self.keywords]
        for name in new:
            free = set(range(KEYWORD_LETTERS)) - set(self.keywords.values())
            if free:
                self.keywords[name] = min(free)
        if new:
            path = str(self.root / "dovecot-keywords")
            text = "".join(f"{index} {name}\n" for name, index in sorted(
                self.keywords.items(), key=lambda pair: pair[1]))
            atomic_write(path, text.encode("utf-8"), mode=FILE_MODE, fsync=False,
                         sync_dir=False)
            self.settler.written(path, str(self.root))
        return "".join(sorted(chr(ord("a") + self.keywords[n]) for n in names
                              if n in self.keywords))

    def flush(self) -> int | None:
        self.settler.settle()
        return None

    def close(self) -> None:
        """Nothing held open."""


def read_keywords(path: Path) -> dict[str, int]:
    """Dovecot's `dovecot-keywords`: `0 $Forwarded` lines (index, space, keyword)."""
    try:
        lines = path.read_text("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.partition(" ") for line in lines)
    return {name: int(index) for index, _, name in pairs
            if index.isdigit() and int(index) < KEYWORD_LETTERS and name}
