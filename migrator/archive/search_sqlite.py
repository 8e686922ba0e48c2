"""The search index's rows in an SQLite manifest, straight through the sqlite3 driver.

No SQLAlchemy here: the extraction process (`search_extractor.py`) writes a file manifest's
index itself with these, and starts in tens of milliseconds; `search_index.py` uses
`insert_docs` inside its sessions too (per message, SQLAlchemy's statement handling cost ten
times what SQLite does).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from migrator.archive.search_text import SearchText

CHUNK = 500  # parameters per IN (...) query
# Per transaction: few, big ones (each small FTS5 commit adds a segment that later merges
# rewrite); the text held meanwhile is bounded by WRITE_CHARS
WRITE_DOCS = 1000
WRITE_CHARS = 16 * 1024 * 1024
# ... except where a transaction holds the write lock of a manifest file the pull commits to
# (the extraction process's): there the pull's next commit waits for it, so short ones, with
# the lock left free for LOCK_GAP after each. SQLite's busy handler does not queue waiters: a
# waiting commit polls (after 1, 2, 5, 10 ms ...), and a writer straight back in its next
# transaction kept it out. While the bench's 5,001 messages were indexed (load 15-16), a
# process committing every 20 ms waited at most 1.2-2.2 s for one commit with transactions
# of 1,000 messages, 0.19-0.65 s with these figures; the FTS5 inserts took the same CPU
# (0.71-0.85 s) in transactions of 100, 250 or 1,000 messages
LOCKED_DOCS = 100
LOCKED_CHARS = 1024 * 1024
LOCK_GAP = 0.02  # seconds

T = TypeVar("T")


def connect(path: str) -> sqlite3.Connection:
    """The indexer's own connection to a manifest file: its commits skip the fsync
    (`synchronous=NORMAL`; the pull's next commit, or a checkpoint, makes them durable, and
    index rows lost to a power cut are found missing by the next catch-up), so they hold
    SQLite's write lock, which the pull's commits wait for, only as long as the inserts."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def not_indexed(connection: sqlite3.Connection, shas: Sequence[str]) -> list[str]:
    """Those of `shas` without a `search_docs` row, sorted, once each."""
    wanted = sorted(set(shas))
    found: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        found.update(sha for (sha,) in connection.execute(
            f"SELECT sha256 FROM search_docs WHERE sha256 IN ({','.join('?' * len(chunk))})",
            chunk))
    return [sha for sha in wanted if sha not in found]


def insert_docs(connection: sqlite3.Connection, texts: Sequence[tuple[str, SearchText]]) -> int:
    """Rows for extracted texts, in the caller's transaction; a blob another process
    indexed meanwhile is skipped. Returns how many were added."""
    cursor = connection.cursor()
    words = []
    try:
        for sha, found in texts:
            row = cursor.execute(
                "INSERT INTO search_docs (sha256, date, sender, subject) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sha256) DO NOTHING RETURNING id",
                (sha, found.date, found.sender, found.subject)).fetchone()
            if row is not None:
                words.append((row[0], found.sender, found.recipients, found.cc, found.subject,
                              found.body))
        cursor.executemany("INSERT INTO search_fts (rowid, sender, recipients, cc, subject, "
                           "body) VALUES (?, ?, ?, ?, ?, ?)", words)
    finally:
        cursor.close()
    return len(words)


def write_transaction(connection: sqlite3.Connection,
                      texts: Sequence[tuple[str, SearchText]]) -> int:
    """`insert_docs` in a transaction of its own (taking the write lock at once, so it
    never fails half-way for a lock)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        added = insert_docs(connection, texts)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return added


class HeldWrites(Generic[T]):
    """Extracted messages held until `docs` of them or `chars` characters of body text, then
    handed to `write` as one transaction; `flush` hands over the rest."""

    def __init__(self, write: Callable[[list[T]], None], body: Callable[[T], int],
                 docs: int = WRITE_DOCS, chars: int = WRITE_CHARS) -> None:
        self.write, self.body, self.docs, self.chars = write, body, docs, chars
        self.held: list[T] = []
        self.held_chars = 0

    def add(self, items: Iterable[T]) -> None:
        for item in items:
            self.held.append(item)
            self.held_chars += self.body(item)
            if len(self.held) >= self.docs or self.held_chars >= self.chars:
                self.flush()

    def flush(self) -> None:
        held, self.held, self.held_chars = self.held, [], 0
        if held:
            self.write(held)
