"""Paths in DEST: folder trees per format, made safe for any filesystem, and file names.

Folder layouts (documented in README):
- maildir: Maildir++, one root: INBOX is DEST itself, `Archive/2019` is `DEST/.Archive.2019`
  (mutt, neomutt, Dovecot and offlineimap read it);
- mbox: Thunderbird's Local Folders layout: `DEST/Archive` is an mbox file and its children
  live in `DEST/Archive.sbd/` (mutt's browser opens the files as well);
- eml: nested directories, `DEST/Archive/2019/*.eml`.
Names come from the decoded (Unicode) folder name; only what a filesystem or a mail client
would misread is replaced by `_`.
"""

from __future__ import annotations

import email.header
import re
from datetime import UTC, datetime

MAX_LEVEL_BYTES = 200  # a path component may have 255 bytes; leave room for " (2)" etc.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_UNREADABLE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')  # also what Windows refuses
_MAILDIR_FLAGS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                  "\\Deleted": "T"}


def levels(name: str, delimiter: str | None) -> list[str]:
    """A folder's hierarchy levels; a POP3 or flat folder is one level."""
    parts = name.split(delimiter) if delimiter else [name]
    return [part for part in parts if part] or [name or "_"]


def safe_level(level: str, extra: str = "") -> str:
    """One path component: no separators or control characters, not hidden, not special."""
    text = _UNSAFE.sub("_", level)
    for char in extra:
        text = text.replace(char, "_")
    text = text.strip() or "_"
    if text.startswith("."):  # hidden files, and Maildir++'s folder marker
        text = "_" + text[1:]
    if text.endswith((".sbd", ".msf")):  # Thunderbird's subfolder and summary suffixes
        text += "_"
    return _truncate(text, MAX_LEVEL_BYTES)


def _truncate(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore").rstrip()


def folder_path(fmt: str, name: str, delimiter: str | None) -> str:
    """The folder's place in DEST, relative, '/'-separated ('' is DEST itself)."""
    parts = levels(name, delimiter)
    if fmt == "maildir":
        if parts[0].upper() == "INBOX":  # INBOX is the root; Courier's INBOX.x are its children
            parts = parts[1:]
        return "." + ".".join(safe_level(p, extra=".") for p in parts) if parts else ""
    safe = [safe_level(p) for p in parts]
    if fmt == "mbox":
        return "/".join([p + ".sbd" for p in safe[:-1]] + safe[-1:])
    return "/".join(safe)


def variant(path: str, number: int) -> str:
    """Another path for a folder whose safe name another folder already holds."""
    return f"{path or '.INBOX'} ({number})"


def maildir_info(flags: str) -> str:
    """The Maildir info suffix (`:2,` and the flag letters in ASCII order)."""
    letters = sorted({_MAILDIR_FLAGS[f] for f in flags.split() if f in _MAILDIR_FLAGS})
    return ":2," + "".join(letters)


def maildir_unique(when: datetime | None, key: str) -> str:
    """A Maildir unique name fixed by the message (not the clock), so a resumed export
    recognises a file it already wrote: `<time>.<sha256 prefix>[-copy].migrator`."""
    sha, _, copy = key.partition(".")
    stamp = int(when.timestamp()) if when else 0
    return f"{stamp}.{sha[:32]}{'-' + copy if copy else ''}.migrator"


def eml_name(when: datetime | None, subject: str | None, key: str) -> str:
    """`2019-03-04 153000 Subject words 1a2b3c4d5e6f.eml`: sortable by date, readable, and
    fixed by the message so a resumed export recognises its own files."""
    sha, _, copy = key.partition(".")
    stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H%M%S") if when else "undated"
    title = _UNREADABLE.sub("_", decode_subject(subject))
    title = " ".join(title.split()).strip(". ") or "(no subject)"
    title = _truncate(title, 120)
    return f"{stamp} {title} {sha[:12]}{'-' + copy if copy else ''}.eml"


def decode_subject(subject: str | None) -> str:
    """The Subject as a person reads it (RFC 2047 words decoded); raw text if malformed."""
    if not subject:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(subject)))
    except (ValueError, LookupError, UnicodeError):
        return subject
