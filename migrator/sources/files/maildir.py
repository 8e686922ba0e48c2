"""Maildir read as a source: the inverse of `migrator export --format maildir`.

Folders: Maildir++ (INBOX is the root, `.Archive.2019` is `Archive/2019`; an ASCII name that
is valid modified UTF-7, as Dovecot and Courier write them, is decoded) and plain nested
maildirs (`Archive/2019/{cur,new,tmp}`). A file is a message in `cur/` or `new/`; `tmp/` holds
deliveries not finished and is not read.

Key: the file name's unique part (before `:`), which the spec keeps when a client renames the
file to change its flags. Flags: the info suffix `:2,` (S \\Seen, R \\Answered, F \\Flagged,
D \\Draft, T \\Deleted, P $Forwarded; a-z are keywords named in Dovecot's `dovecot-keywords`).
INTERNALDATE: the file's mtime, which Dovecot and the export keep as the received date (the
time prefix of the name is when a file was delivered, not always when mail was received).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from datetime import UTC, datetime

from migrator.errors import SourcePathError
from migrator.folders import decode_name
from migrator.sources.files import FileFolder, FileMessage

INBOX = "INBOX"
LETTERS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "D": "\\Draft",
           "T": "\\Deleted", "P": "$Forwarded"}
SUBDIRS = ("cur", "new", "tmp")
MAX_DEPTH = 32


def is_maildir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur")) or os.path.isdir(os.path.join(path, "new"))


class MaildirSource:
    """A Maildir++ root or a tree of plain maildirs."""

    def __init__(self, path: str) -> None:
        if not os.path.isdir(path):
            raise SourcePathError(f"{path}: no such Maildir directory")
        self.dirs = dict(_folders(path))
        if not self.dirs:
            raise SourcePathError(f"{path}: not a Maildir (no cur/ or new/ in it or below)")

    def folders(self) -> list[FileFolder]:
        return [FileFolder(name) for name in sorted(self.dirs)]

    def messages(self, folder: FileFolder) -> Iterator[FileMessage]:
        root = self.dirs[folder.name]
        keywords = read_keywords(os.path.join(root, "dovecot-keywords"))
        entries: list[tuple[str, str, str]] = []
        for sub in ("cur", "new"):
            directory = os.path.join(root, sub)
            if not os.path.isdir(directory):
                continue
            entries.extend((name, os.path.join(directory, name), sub)
                           for name in os.listdir(directory) if not name.startswith("."))
        for name, path, sub in sorted(entries):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue  # moved by a client since the listing (cur/ to new/, or deleted)
            unique, _, info = name.partition(":")
            flags = flags_of(info, keywords) if sub == "cur" else ()
            yield FileMessage(key=unique, flags=flags, size=stat.st_size,
                              internaldate=datetime.fromtimestamp(int(stat.st_mtime), UTC),
                              read=functools.partial(_read, path))

    def close(self) -> None:
        """Nothing held open."""


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def flags_of(info: str, keywords: dict[str, str]) -> tuple[str, ...]:
    """IMAP flags of an info suffix (`2,FRS`); `1,` (experimental semantics) has none."""
    if not info.startswith("2,"):
        return ()
    flags = {LETTERS.get(letter) or keywords.get(letter) for letter in info[2:]}
    return tuple(sorted(flag for flag in flags if flag))


def read_keywords(path: str) -> dict[str, str]:
    """Dovecot's letter map: `0 $Forwarded` makes `a` that keyword, `1 Work` makes `b`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return {}
    mapping = {}
    for line in lines:
        index, _, name = line.partition(" ")
        if index.isdigit() and int(index) < 26 and name:
            mapping[chr(ord("a") + int(index))] = name
    return mapping


def _folders(root: str) -> Iterator[tuple[str, str]]:
    if is_maildir(root):
        yield INBOX, root
    yield from _nested(root, "", 0)


def _nested(directory: str, parent: str, depth: int) -> Iterator[tuple[str, str]]:
    """Maildir++ `.A.B` folders at the root, plain maildirs below (`A/B/cur`)."""
    if depth > MAX_DEPTH:
        return
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name in SUBDIRS or not os.path.isdir(path):
            continue
        if name.startswith("."):
            if depth == 0 and len(name) > 1 and name != ".." and is_maildir(path):
                yield "/".join(_decoded(part) for part in name[1:].split(".")), path
            continue
        folder = f"{parent}/{name}" if parent else name
        if is_maildir(path):
            yield folder, path
        yield from _nested(path, folder, depth + 1)


def _decoded(level: str) -> str:
    """A Maildir++ level as Unicode: Dovecot writes modified UTF-7, the export UTF-8."""
    if "&" not in level or not level.isascii():
        return level
    try:
        return decode_name(level)
    except (ValueError, UnicodeError):  # `R&D` as the export wrote it
        return level
