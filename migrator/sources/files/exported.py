"""Flags an mbox export left in its journal, read back when the export is imported.

mbox has no place for flags that would not alter the message (Status headers), so
`migrator export --format mbox` records each message's flags in DEST's journal,
`.migrator-export` (JSON lines; engine/export/journal.py writes it), keyed as the mbox reader
keys messages: the SHA-256 of the message as stored in the file (quoted), plus `.N` for its
N-th identical twin. The journal is only read here, never locked or changed: an export may be
appending to it (a last line cut short is ignored).
"""

from __future__ import annotations

import json
import os
from typing import Any

JOURNAL_NAME = ".migrator-export"
JOURNAL_VERSION = 1
MAX_LEVELS = 32  # parent directories searched for the journal of a file or subtree

MboxFlags = dict[str, dict[str, tuple[str, ...]]]  # absolute mbox path -> key -> flags


def find_mbox_flags(path: str) -> MboxFlags:
    """The recorded flags of every mbox file of the export `path` is (or lies in); {} if none."""
    directory = os.path.realpath(path)
    if os.path.isfile(directory):
        directory = os.path.dirname(directory)
    for _ in range(MAX_LEVELS):
        journal = os.path.join(directory, JOURNAL_NAME)
        if os.path.isfile(journal):
            return _read(journal, directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return {}


def _read(journal: str, dest: str) -> MboxFlags:
    try:
        with open(journal, "rb") as file:
            data = file.read()
    except OSError:
        return {}
    records: list[dict[str, Any]] = []
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            return {}  # damaged: not a journal to trust
    if not records or records[0].get("export") != JOURNAL_VERSION \
            or records[0].get("format") != "mbox":
        return {}
    paths: dict[str, str] = {}
    found: MboxFlags = {}
    for record in records[1:]:
        if "folder" in record:
            paths[record["folder"]] = record["path"]
        elif "done" in record and isinstance(record.get("flags"), dict):
            mbox = os.path.join(dest, paths.get(record["done"], ""))
            found.setdefault(mbox, {}).update(
                (key, tuple(str(text).split())) for key, text in record["flags"].items())
    return found
