"""eml: one `.eml` file per message, in one directory per folder, named to be read.

The name (date, subject, SHA-256 prefix) is fixed by the message, so a resumed export finds
what it wrote before its journal said so and never writes it again.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path

from migrator.engine.export.files import Settler, clear_temps, make_dirs, place
from migrator.engine.export.names import eml_name
from migrator.engine.export.plan import Item
from migrator.headers import header_value


class EmlFolder:
    def __init__(self, dest: Path, path: str, settler: Settler, counts: Counter[str]) -> None:
        self.root = dest / path
        self.directory = str(self.root)
        self.settler = settler

    def open(self) -> None:
        make_dirs(self.root, self.settler)
        clear_temps(self.root)

    def add(self, item: Item, data: bytes, when: datetime | None) -> bool:
        """Write the message unless its file is already there; True if written."""
        final = os.path.join(self.directory,
                             eml_name(when, header_value(data, "Subject"), item.key))
        if os.path.lexists(final):
            return False
        place(self.directory, final, data, when)
        self.settler.written(final, self.directory)
        return True

    def flush(self) -> int | None:
        self.settler.settle()
        return None

    def close(self) -> None:
        """Nothing held open."""
