"""Seed and inspect Maildir mailboxes of a running test Dovecot.

Seeding writes message files straight into the folder's Maildir `cur/`
(name `SECS.MnnnnPpid.migrator,S=size,W=served size:2,FLAGS`, mtime = INTERNALDATE) and
lets Dovecot assign UIDs on its next sync, in file-name order, which is the
order given. That is fast enough for thousands of large messages. Keywords go
into the folder's `dovecot-keywords` letter map.

Byte-exactness: a file placed in Maildir is kept as-is, but Dovecot serves
every bare LF as CRLF over IMAP (bare CR is left alone). Dovecot stores IMAP
APPENDs with LF line ends and serves them with CRLF the same way. So
`list_messages` returns `raw` exactly as IMAP FETCH BODY[] would, i.e. the file
with bare LFs turned into CRLF; `size` is Dovecot's RFC822.SIZE.
"""
import datetime
import itertools
import json
import os
import re
import time
from typing import NamedTuple

FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R",
                "\\Seen": "S", "\\Deleted": "T"}
_KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_BARE_LF = re.compile(rb"(?<!\r)\n")
_sequence = itertools.count(1)


class SeedMessage(NamedTuple):
    """What `seed` needs; corpus messages have the same attributes."""
    raw: bytes
    flags: tuple = ()
    internaldate: object = None  # aware datetime, epoch seconds, or None = now


class StoredMessage(NamedTuple):
    uid: int
    flags: frozenset
    internaldate: datetime.datetime  # UTC
    raw: bytes  # as served over IMAP
    size: int   # RFC822.SIZE


def as_imap_bytes(data):
    """The bytes Dovecot serves for a stored message: bare LF becomes CRLF."""
    return _BARE_LF.sub(b"\r\n", data)


def _epoch(internaldate):
    if internaldate is None:
        return time.time()
    if isinstance(internaldate, datetime.datetime):
        return internaldate.timestamp()
    return float(internaldate)


def _read_keywords(path):
    try:
        with open(path, encoding="utf-8") as f:
            pairs = (line.rstrip("\n").split(" ", 1) for line in f if " " in line)
            return {name: int(index) for index, name in pairs}
    except FileNotFoundError:
        return {}


def _write_keywords(path, mapping, owner):
    tmp = path + ".migrator-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for name, index in sorted(mapping.items(), key=lambda kv: kv[1]):
            f.write(f"{index} {name}\n")
    _chown(tmp, owner)
    os.replace(tmp, path)


def _chown(path, owner):
    if owner is not None:
        os.chown(path, *owner)


class MaildirWriter:
    """Writes seed files into one Maildir folder directory."""

    def __init__(self, folder_dir, owner):
        self.dir = folder_dir
        self.owner = owner  # (uid, gid) to chown to, or None
        self.keywords_path = os.path.join(folder_dir, "dovecot-keywords")
        self.keywords = _read_keywords(self.keywords_path)
        self._keywords_changed = False

    def _letters(self, flags):
        letters = []
        for flag in flags:
            if flag in FLAG_LETTERS:
                letters.append(FLAG_LETTERS[flag])
            elif flag.startswith("\\"):
                raise ValueError(f"unsupported system flag {flag!r}")
            else:
                letters.append(_KEYWORD_LETTERS[self._keyword_index(flag)])
        return "".join(sorted(set(letters)))

    def _keyword_index(self, name):
        if name not in self.keywords:
            if len(self.keywords) >= len(_KEYWORD_LETTERS):
                raise ValueError("Maildir supports at most 26 keywords per folder")
            used = set(self.keywords.values())
            self.keywords[name] = min(set(range(26)) - used)
            self._keywords_changed = True
        return self.keywords[name]

    def write(self, message, seconds):
        raw = bytes(message.raw)
        # S= the file's size, W= the size as served (bare LF as CRLF): Dovecot then knows
        # RFC822.SIZE without reading the file
        name = (f"{seconds}.M{next(_sequence):09d}P{os.getpid()}.migrator"
                f",S={len(raw)},W={len(as_imap_bytes(raw))}:2,{self._letters(message.flags)}")
        path = os.path.join(self.dir, "cur", name)
        with open(path, "wb") as f:
            f.write(raw)
        _chown(path, self.owner)
        stamp = _epoch(message.internaldate)
        os.utime(path, (stamp, stamp))

    def finish(self):
        if self._keywords_changed:
            _write_keywords(self.keywords_path, self.keywords, self.owner)


def seed(server, user, folder, messages):
    """Place `messages` in `folder` of `user`; return their UIDs in order."""
    if folder not in server.folders(user):
        server.create_folder(user, folder)
    before = server.mailbox_status(user, folder, "uidnext")
    writer = MaildirWriter(server.mailbox_path(user, folder), server.mail_owner)
    seconds = int(time.time())
    count = 0
    for message in messages:
        writer.write(message, seconds)
        count += 1
    writer.finish()
    after = server.mailbox_status(user, folder, "uidnext")
    if after - before != count:
        raise RuntimeError(f"Dovecot picked up {after - before} of {count} seeded messages")
    return list(range(before, after))


def _files_by_guid(folder_dir):
    files = {}
    for sub in ("cur", "new"):
        for name in os.listdir(os.path.join(folder_dir, sub)):
            files[name.split(":", 1)[0]] = os.path.join(folder_dir, sub, name)
    return files


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def list_messages(server, user, folder):
    """All messages of a folder as StoredMessage, by UID."""
    out = server.doveadm("-f", "json", "fetch", "-u", user,
                         "uid flags date.received.unixtime size.virtual guid",
                         "mailbox", folder, "all")
    rows = json.loads(out) if out.strip() else []
    folder_dir = server.mailbox_path(user, folder)
    files = _files_by_guid(folder_dir)
    result = []
    for row in rows:
        stamp = int(row["date.received.unixtime"])
        result.append(StoredMessage(
            uid=int(row["uid"]),
            flags=frozenset(row["flags"].split()) - {"\\Recent"},
            internaldate=datetime.datetime.fromtimestamp(stamp, datetime.UTC),
            raw=as_imap_bytes(_read_moving(folder_dir, files, row["guid"])),
            size=int(row["size.virtual"])))
    return sorted(result)


def _read_moving(folder_dir, files, guid, tries=5):
    """A message file's bytes, though the server may rename it meanwhile (new/ to cur/, a
    flag change): on a vanished name the folder is listed again (a few times at most)."""
    for _ in range(tries - 1):
        try:
            return _read(files[guid])
        except FileNotFoundError:
            files.update(_files_by_guid(folder_dir))
    return _read(files[guid])
