"""Seed a whole Maildir++ mailbox of the source Dovecot at once, for mailboxes too big for
per-folder doveadm calls (a 100,000-message benchmark).

`mailstore.seed` asks doveadm three times per folder and once more after; here the folder
directories (`.Name` in modified UTF-7, with `maildirfolder`) and the message files
(`cur/`, the same names as `mailstore.MaildirWriter`: `,S=` file size, `,W=` the size as
served, flags in the `:2,` suffix, keywords in `dovecot-keywords`) are written straight into
the user's `~/Maildir` without asking Dovecot anything. One `doveadm mailbox status` over
every folder then makes Dovecot index them all (UIDs in file-name order, the order given), so
the first IMAP session does not pay for it, and its counts must match what was written.

Messages are taken from an iterable and written one by one, so a seed never holds the
mailbox in memory.
"""
import os
from collections.abc import Iterable

from imapclient import imap_utf7

from .mailstore import MaildirWriter, SeedMessage


def folder_dir(maildir: str, name: str) -> str:
    """Where Dovecot's Maildir++ layout (separator '.', empty prefix) keeps folder `name`."""
    if name.upper() == "INBOX":
        return maildir
    return os.path.join(maildir, "." + imap_utf7.encode(name).decode("ascii"))


def _make_folder(path: str, owner, inbox: bool) -> None:
    for sub in ("", "cur", "new", "tmp"):
        directory = os.path.join(path, sub)
        os.makedirs(directory, exist_ok=True)
        if owner is not None:
            os.chown(directory, *owner)
    if not inbox:
        marker = os.path.join(path, "maildirfolder")
        open(marker, "ab").close()
        if owner is not None:
            os.chown(marker, *owner)


def seed_mailbox(server, user: str, messages: Iterable[tuple[str, SeedMessage]],
                 seconds: int = 1_000_000_000) -> dict[str, int]:
    """Write (folder, message) pairs into `user`'s Maildir (the user must exist and must not
    have been opened yet by this seed's folders' sessions); return messages per folder, as
    Dovecot counts them after indexing. `seconds` is the file names' time part (any fixed
    value keeps names, and so UIDs, in the order given)."""
    if server.profile != "source":
        raise ValueError("seed_mailbox writes Maildir++ (the source server's layout)")
    home = server._path("home", user.lower())
    maildir = os.path.join(home, "Maildir")
    owner = server.mail_owner
    if not os.path.isdir(home):
        os.makedirs(home)
        if owner is not None:
            os.chown(home, *owner)
    writers: dict[str, MaildirWriter] = {}
    written: dict[str, int] = {}
    for folder, message in messages:
        writer = writers.get(folder)
        if writer is None:
            path = folder_dir(maildir, folder)
            _make_folder(maildir, owner, inbox=True)
            _make_folder(path, owner, inbox=path == maildir)
            writer = writers[folder] = MaildirWriter(path, owner)
            written[folder] = 0
        writer.write(message, seconds)
        written[folder] += 1
    for writer in writers.values():
        writer.finish()
    counted = indexed_counts(server, user)
    wrong = {name: (counted.get(name), count) for name, count in written.items()
             if counted.get(name) != count}
    if wrong:
        raise RuntimeError(f"Dovecot indexed other counts than were written: {wrong}")
    return counted


def indexed_counts(server, user: str) -> dict[str, int]:
    """Messages per folder as Dovecot counts them (one doveadm over every folder, which
    syncs and indexes each one)."""
    out = server.doveadm("-f", "tab", "mailbox", "status", "-u", user, "messages", "*")
    lines = out.splitlines()[1:]  # a header line first
    counts = {}
    for line in lines:
        name, _, count = line.rpartition("\t")
        counts[name] = int(count)
    return counts
