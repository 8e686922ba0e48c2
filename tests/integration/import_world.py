"""Helpers for the import tests: configs with file sources, and the archive's view of an
account read with plain sqlite3 (not migrator's code)."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from tests.integration.imap_pull_world import blob, manifest
from tests.world.configs import Account, Config, Endpoint


def file_source(kind: str, path: Path, **options) -> Endpoint:
    return Endpoint(kind, host=None, options={"path": str(path), **options})  # type: ignore[arg-type]


def import_config(work: Path, sources: dict[str, Endpoint], archive: Path | None = None,
                  target: Endpoint | None = None) -> Path:
    """A config whose accounts import `sources` ({account: file source}) into one archive."""
    accounts = {name: Account(source, target) for name, source in sources.items()}
    return Config(archive or work / "archive", accounts).write(work / "import.toml")


def rows(archive: Path, account: str, *, gone: bool = False
         ) -> dict[str, list[tuple[str, frozenset[str], str, str | None]]]:
    """{folder: [(sha256, flags, internaldate, key)]} of the account's messages (present ones,
    or with `gone` the ones marked gone)."""
    with manifest(archive) as db:
        found = db.execute(
            "SELECT f.name, m.sha256, m.flags, m.internaldate, m.uidl FROM messages m "
            "JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = f.account_id "
            f"WHERE a.name = ? AND m.gone_at IS {'NOT ' if gone else ''}NULL ORDER BY m.id",
            (account,)).fetchall()
    view: dict[str, list[tuple[str, frozenset[str], str, str | None]]] = {}
    for folder, sha, flags, when, key in found:
        view.setdefault(folder, []).append((sha, frozenset(flags.split()), when, key))
    return view


def contents(archive: Path, account: str) -> dict[str, Counter[tuple[str, frozenset[str], str]]]:
    """{folder: multiset of (sha256, flags, internaldate)}."""
    return {folder: Counter((sha, flags, when) for sha, flags, when, _ in found)
            for folder, found in rows(archive, account).items()}


def sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_of(archive: Path, sha: str) -> bytes:
    return blob(archive, sha)
