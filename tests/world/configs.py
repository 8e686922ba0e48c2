"""migrator config files for the tests and the benchmarks, built from one typed structure.

Each key migrator reads is spelled once, here, instead of in a dozen f-strings of TOML; a
misspelt field is a TypeError where the config is built, and migrator rejects unknown keys
when it loads the file, so a key renamed on either side fails the tests (bench/ included:
tests/integration/test_bench_smoke.py runs it). Values are written as proper TOML (strings
escaped), so a path or secret with a quote or backslash cannot break the file.

    Config(archive=tmp_path / "archive", accounts={"bob": Account(
        source=Endpoint("imap", port=143, username="bob", password="env:PW"))}).write(path)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import manifests
from .net import HOST

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


@dataclass(frozen=True)
class OAuth:
    """An endpoint's [oauth] table; secrets are references ("env:NAME", "file:PATH")."""

    authority: str
    ca_file: str | Path | None = None
    client_id: str = "app"
    flow: str = "client_credentials"
    client_secret: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """A source or target table (also a batch default, where most keys come from the CSV).
    None leaves a key out, so migrator's default applies; `options` holds keys this class
    does not name (migrator rejects any it does not know either)."""

    kind: str
    port: int | None = None
    username: str | None = None
    host: str = HOST
    security: str | None = None
    auth: str | None = None
    password: str | None = None
    ca_file: str | Path | None = None
    timeout: float | None = None
    connections: int | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    delete: str | None = None
    delete_after_days: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    oauth: OAuth | None = None

    def table(self) -> dict[str, Any]:
        keys = _set_fields(self, skip=("options", "oauth"))
        keys.update(self.options)
        if self.oauth is not None:
            keys["oauth"] = _set_fields(self.oauth)
        return keys

    def but(self, **changes: Any) -> Endpoint:
        """A copy with some fields changed (None removes a key)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Account:
    source: Endpoint
    target: Endpoint | None = None


@dataclass(frozen=True)
class Batch:
    """The [batch] table: defaults every CSV row of `migrator batch run` is merged into."""

    source: Endpoint | None = None
    target: Endpoint | None = None
    parallel: int | None = None
    report_dir: str | Path | None = None


@dataclass(frozen=True)
class Config:
    """A whole config file: the archive's path (and database URL), accounts, batch. Without
    a `database`, the one tests.world.manifests gives the archive (SQLite, or PostgreSQL in
    a test module run on both)."""

    archive: str | Path
    accounts: Mapping[str, Account] = field(default_factory=dict)
    batch: Batch | None = None
    database: str | None = None
    search_index: bool | None = None
    index_during_migrate: bool | None = None

    def table(self) -> dict[str, Any]:
        database = self.database if self.database is not None else manifests.database(
            self.archive)  # None: the SQLite default; a PostgreSQL URL in that test mode
        archive = {"path": self.archive, "database": database,
                   "search_index": self.search_index,
                   "index_during_migrate": self.index_during_migrate}
        top: dict[str, Any] = {"archive": {k: v for k, v in archive.items() if v is not None}}
        if self.accounts:
            top["accounts"] = {
                name: {"source": account.source.table()}
                | ({"target": account.target.table()} if account.target else {})
                for name, account in self.accounts.items()}
        if self.batch is not None:
            batch = self.batch
            top["batch"] = _set_fields(batch, skip=("source", "target")) | {
                side: endpoint.table() for side, endpoint in
                (("source", batch.source), ("target", batch.target)) if endpoint is not None}
        return top

    def text(self) -> str:
        return dumps(self.table())

    def write(self, path: Path) -> Path:
        path.write_text(self.text(), encoding="utf-8")
        return path


def _set_fields(instance: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)
            if f.name not in skip and getattr(instance, f.name) is not None}


# -- TOML ----------------------------------------------------------------------------------
def dumps(table: Mapping[str, Any]) -> str:
    """TOML for nested mappings of strings, paths, numbers, booleans and lists; each
    mapping becomes a [table] after its parent's plain keys."""
    lines: list[str] = []
    _emit(lines, (), table)
    return "\n".join(lines).lstrip("\n") + "\n"


def _emit(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    plain = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (plain or not tables):
        lines += ["", "[" + ".".join(_key(part) for part in path) + "]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in plain.items()]
    for key, value in tables.items():
        _emit(lines, (*path, key), value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):  # before int: True is an int too
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}: {value!r}")


def _string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f"
                                             else c) for c in text) + '"'
