"""The source's personal namespace, kept next to the archive for the push.

The push maps archived folder names onto the target long after the pull talked to the source,
so the pull records what NAMESPACE said (see migrator/namespace.py) in a small JSON file per
account under `<archive>/namespaces/`, written atomically, so the manifest's schema stays as
it is. The file also names the server (host:port) that said it, so later pulls from the same
server need not ask again: a no-op pull stays one LIST-STATUS round trip.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

from migrator.errors import StorageError
from migrator.namespace import Namespace

DIRECTORY = "namespaces"


def _path(root: Path, account: str) -> Path:
    # account names are non-empty and have no '/'; quoting keeps '.' and '..' harmless too
    return Path(root) / DIRECTORY / f"account-{urllib.parse.quote(account, safe='')}.json"


def save(root: Path, account: str, namespace: Namespace, server: str) -> None:
    """Remember the source namespace of `account` as `server` (host:port) told it (rewritten
    only when it changed)."""
    if load(root, account) == namespace and told_by(root, account) == server:
        return
    from migrator.durable import atomic_write  # ctypes: not for a pull that only reads this

    path = _path(root, account)
    payload = {"prefix": namespace.prefix, "delimiter": namespace.delimiter, "server": server}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(payload).encode())
    except OSError as exc:
        raise StorageError(f"{account}: cannot write {path}: {exc.strerror}") from None


def load(root: Path, account: str) -> Namespace | None:
    """The recorded namespace, or None when no pull recorded one (POP3, older archives)."""
    data = _read(root, account)
    prefix, delimiter = data.get("prefix"), data.get("delimiter")
    if not isinstance(prefix, str):
        return None
    return Namespace(prefix, delimiter if isinstance(delimiter, str) else None)


def told_by(root: Path, account: str) -> str | None:
    """The server (host:port) whose NAMESPACE answer is recorded, if any."""
    server = _read(root, account).get("server")
    return server if isinstance(server, str) else None


def _read(root: Path, account: str) -> dict[str, object]:
    try:
        data = json.loads(_path(root, account).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
