"""Helpers for the export tests: an archive pulled from the real test-world Dovecot, the
archive's view read with plain sqlite3, each export format read back with Python's `mailbox`
module (not migrator's code), and mutt driven through a pseudo-terminal."""

from __future__ import annotations

import collections
import datetime
import hashlib
import os
import pty
import re
import select
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.integration.imap_pull_world import blob, manifest

# the corpus folders (server separator ".") and where each format puts them
PATHS = {
    "maildir": {"INBOX": "", "Sent": ".Sent", "Drafts": ".Drafts",
                "Archive.2019": ".Archive.2019", "Reisen.Überblick": ".Reisen.Überblick"},
    "mbox": {"INBOX": "INBOX", "Sent": "Sent", "Drafts": "Drafts",
             "Archive.2019": "Archive.sbd/2019", "Reisen.Überblick": "Reisen.sbd/Überblick"},
    "eml": {"INBOX": "INBOX", "Sent": "Sent", "Drafts": "Drafts",
            "Archive.2019": "Archive/2019", "Reisen.Überblick": "Reisen/Überblick"},
}
MAILDIR_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                   "\\Deleted": "T"}
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_FROM = re.compile(rb"^(>*From )", re.MULTILINE)
MUTT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Row:
    sha256: str
    data: bytes
    flags: frozenset[str]
    internaldate: datetime.datetime
    gone: bool


def archived(archive: Path, account: str = "alice") -> dict[str, list[Row]]:
    """{folder: [Row]} for every message row of the account, gone ones included."""
    with manifest(archive) as db:
        rows = db.execute(
            "SELECT f.name, m.sha256, m.flags, m.internaldate, m.gone_at FROM messages m "
            "JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id "
            "WHERE a.name = ? ORDER BY m.id", (account,)).fetchall()
    view: dict[str, list[Row]] = {}
    for name, sha, flags, internaldate, gone in rows:
        view.setdefault(name, []).append(Row(
            sha, blob(archive, sha), frozenset(flags.split()),
            datetime.datetime.fromisoformat(internaldate), gone is not None))
    return view


def unquote(data: bytes) -> bytes:
    """mboxrd: one `>` less on every line matching `>+From `."""
    return _QUOTED_FROM.sub(rb"\1", data)


def quote(data: bytes) -> bytes:
    """mboxrd: one `>` more on every line matching `>*From ` (as mutt then shows it)."""
    return _FROM.sub(rb">\1", data)


def maildir_messages(root: Path) -> dict[str, tuple[bytes, str, float]]:
    """{file name: (bytes, info letters, mtime)} of a Maildir folder, via `mailbox`."""
    box = mailbox_maildir(root)
    result = {}
    for key in box.keys():  # noqa: SIM118 - iterating a mailbox yields messages, not keys
        name = os.path.basename(box._lookup(key))  # the file's own name, flags and all
        path = root / "cur" / name
        result[name] = (box.get_bytes(key), box.get_message(key).get_flags(),
                        path.stat().st_mtime)
    return result


def mailbox_maildir(root: Path):
    import mailbox

    return mailbox.Maildir(root, factory=None, create=False)


def mbox_messages(path: Path) -> list[bytes]:
    """Each message of an mbox file, `From ` line dropped and un-quoted, via `mailbox`."""
    import mailbox

    box = mailbox.mbox(path, create=False)
    try:
        return [unquote(box.get_bytes(key)) for key in box.keys()]  # noqa: SIM118 - (messages otherwise)
    finally:
        box.close()


def eml_messages(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.eml"))}


def exported_bytes(dest: Path, fmt: str, path: str) -> list[bytes]:
    """The messages of one exported folder, as bytes, whatever the format."""
    if fmt == "maildir":
        return [data for data, _, _ in maildir_messages(dest / path if path else dest).values()]
    if fmt == "mbox":
        return mbox_messages(dest / path)
    return list(eml_messages(dest / path).values())


def as_mbox_stores(data: bytes) -> bytes:
    """What mbox gives back: the message, with a final line break if it had none."""
    return data if data.endswith(b"\n") else data + b"\n"


def tree(dest: Path) -> dict[str, str]:
    """{relative path: sha256 of content} of every file in DEST but the journal."""
    return {str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dest.rglob("*")) if p.is_file() and p.name != ".migrator-export"}


def stat_snapshot(dest: Path) -> dict[str, tuple[int, int, int]]:
    """{relative path: (inode, size, mtime_ns)}: any rewrite of a file changes it."""
    return {str(p.relative_to(dest)): (p.stat().st_ino, p.stat().st_size,
                                       p.stat().st_mtime_ns)
            for p in sorted(dest.rglob("*")) if p.is_file() and p.name != ".migrator-export"}


def counter(items: Iterable[bytes]) -> collections.Counter[bytes]:
    return collections.Counter(items)


# -- mutt ----------------------------------------------------------------------------------
def mutt_binary() -> str | None:
    return shutil.which("mutt")


def mutt_pipe_all(folder: Path, out: Path, home: Path) -> list[bytes]:
    """Open `folder` in mutt (read-only, in a pseudo-terminal), pipe every message it finds
    to a file of its own, quit; the piped messages' bytes, in mailbox order."""
    out.mkdir()
    (home / "Mail").mkdir(parents=True, exist_ok=True)  # else mutt asks to create it
    muttrc = home / "muttrc"
    muttrc.write_text("set pipe_split=yes\nset pipe_decode=no\nset pipe_sep=\"\"\n"
                      "set wait_key=no\nset sort=mailbox-order\nset quit=yes\n"
                      f"set folder={home / 'Mail'}\n", encoding="utf-8")
    keys = (f'push "<tag-pattern>~A<enter><tag-prefix><pipe-message>'
            f'cat > $(mktemp {out}/m.XXXXXXXX)<enter><quit>"')
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "HOME": str(home), "MAIL": str(folder)}
    process = subprocess.Popen(["mutt", "-n", "-R", "-F", str(muttrc), "-f", str(folder),
                                "-e", keys], stdin=slave, stdout=slave, stderr=slave,
                               env=env, close_fds=True)
    os.close(slave)
    try:
        _drain(master)
        process.wait(timeout=MUTT_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert process.returncode == 0, f"mutt exited with {process.returncode}"
    return [p.read_bytes() for p in sorted(out.iterdir())]


def _drain(master: int) -> None:
    """Read the terminal until mutt closes it (it blocks once the pty buffer is full)."""
    while True:
        ready, _, _ = select.select([master], [], [], MUTT_TIMEOUT)
        if not ready:
            return
        try:
            if not os.read(master, 65536):
                return
        except OSError:  # EIO: mutt has exited and the terminal is gone
            return


_HEADER_LINE = re.compile(rb"[!-9;-~]+:|[ \t]")


def body(data: bytes) -> bytes | None:
    """A message's body: what follows the first empty line; None when a line before it is
    no header field (mail clients differ on where such a malformed header block ends)."""
    position = 0
    for line in data.splitlines(keepends=True):
        if line in (b"\n", b"\r\n"):
            return data[position + len(line):]
        if not _HEADER_LINE.match(line):
            return None
        position += len(line)
    return None


_MUTT_HEADER_END = re.compile(rb"\r?\n\n")


def mutt_body(piped: bytes) -> bytes:
    """The body of a message as mutt pipes it (mutt re-emits the header, ending it with LF,
    and an mbox message's `From ` line first)."""
    if piped.startswith(b"From "):
        piped = piped.split(b"\n", 1)[1]
    found = _MUTT_HEADER_END.search(piped)
    return piped[found.end():] if found else b""
