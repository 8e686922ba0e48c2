"""Which of an account's blobs are damaged, and where the source may still have each.

A blob is damaged when its file is missing or does not re-hash to its name (what `verify
--archive` reports). Every message row pointing at it is a place to fetch it from again:
its folder, IMAP UIDVALIDITY/UID and Message-ID, or POP3 UIDL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from migrator.archive.blobs import BlobStore, sha256_hex
from migrator.archive.db import Manifest
from migrator.archive.manifest import AccountRow, FolderRow, MessageRow
from migrator.errors import StorageError


@dataclass(frozen=True)
class Copy:
    """One archived message row of a damaged blob: where its source had it."""

    folder: str
    raw_folder: str
    delimiter: str | None
    uidvalidity: int | None
    uid: int | None
    uidl: str | None
    message_id: str | None

    def describe(self) -> str:
        where = f"UID {self.uid}" if self.uid is not None else f"UIDL {self.uidl}"
        return f"{self.folder} {where} Message-ID {self.message_id or '(none)'}"


@dataclass
class Damaged:
    sha256: str
    state: str  # missing | corrupted
    copies: list[Copy] = field(default_factory=list)


def find_damaged(manifest: Manifest, store: BlobStore, account: str,
                 progress: Callable[[int], None] = lambda size: None) -> list[Damaged]:
    """Re-hash every blob of the account's messages; the damaged ones with their rows."""
    query = (select(MessageRow.sha256, MessageRow.size, FolderRow.name, FolderRow.raw_name,
                    FolderRow.delimiter, MessageRow.uidvalidity, MessageRow.uid,
                    MessageRow.uidl, MessageRow.message_id)
             .join(FolderRow, MessageRow.folder_id == FolderRow.id)
             .join(AccountRow, FolderRow.account_id == AccountRow.id)
             .where(AccountRow.name == account).order_by(MessageRow.id))
    with manifest.session() as session:
        rows = session.execute(query).all()
    states: dict[str, str] = {}
    damaged: dict[str, Damaged] = {}
    for sha, size, folder, raw, delimiter, validity, uid, uidl, message_id in rows:
        if sha not in states:
            states[sha] = store.check(sha)
            progress(size)
        if states[sha] != "ok":
            copy = Copy(folder, raw, delimiter, validity, uid, uidl, message_id)
            damaged.setdefault(sha, Damaged(sha, states[sha])).copies.append(copy)
    return list(damaged.values())


class Restorer:
    """Puts fetched bytes back in the archive when they hash to a damaged blob's name."""

    def __init__(self, store: BlobStore, damaged: list[Damaged]) -> None:
        self.store = store
        self.wanted = {d.sha256 for d in damaged}
        self.restored: set[str] = set()

    def offer(self, data: bytes) -> bool:
        """Store `data` if it is a damaged blob (a corrupted file is replaced only now, with
        the right bytes in hand); True if it was one."""
        sha = sha256_hex(data)
        if sha not in self.wanted or sha in self.restored:
            return False
        if self.store.check(sha) == "corrupted":
            try:
                self.store.path(sha).unlink()
            except OSError as exc:
                raise StorageError(f"cannot replace corrupted blob {sha}: {exc.strerror}") \
                    from None
        self.store.put(data)
        self.restored.add(sha)
        return True

    def missing(self) -> set[str]:
        return self.wanted - self.restored
