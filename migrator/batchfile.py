"""A batch CSV: one mailbox per row, merged with the base config's `[batch]` defaults.

Rows carry secret references (`env:`, `file:`, `keyring:`), never secrets: a literal in the
CSV is refused for that row, because CSVs get mailed around and left in shared folders.
A bad row is reported against its line; the other rows go on.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.config import MAX_PORT, Account, Settings, Table, parse_account
from migrator.errors import ConfigError
from migrator.secrets import Secret

COLUMNS = ("account", "source_kind", "source_host", "source_port", "source_security",
           "source_user", "source_secret", "target_user", "include", "exclude")
_SOURCE_COLUMNS = {"source_kind": "kind", "source_host": "host",
                   "source_security": "security", "source_user": "username"}


@dataclass(frozen=True)
class BatchRow:
    line: int
    name: str
    account: Account | None = None
    error: str | None = None


def load_batch(path: Path, settings: Settings) -> list[BatchRow]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            unknown = set(reader.fieldnames or ()) - set(COLUMNS)
            if unknown or not reader.fieldnames:
                raise ConfigError(f"{path}: unknown or missing header columns "
                                  f"{sorted(unknown) or '(none)'}; expected some of "
                                  f"{', '.join(COLUMNS)}")
            records = [(reader.line_num, row) for row in reader]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read batch file: {exc.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid CSV file: {exc}") from None
    rows: list[BatchRow] = []
    seen: set[str] = set()
    for line, record in records:
        if not any((value or "").strip() for value in record.values()):
            continue
        row = _row(path, line, record, settings)
        if row.name in seen:
            row = BatchRow(line, row.name, error=f"{path}: line {line}: account {row.name!r} "
                                                 "appears twice")
        seen.add(row.name)
        rows.append(row)
    return rows


def account_name(record: dict[str, str]) -> str:
    explicit = (record.get("account") or "").strip()
    if explicit:
        return explicit
    user = (record.get("source_user") or record.get("target_user") or "").strip()
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", user).lstrip(".") or "unnamed"


def _row(path: Path, line: int, record: dict[str, str], settings: Settings) -> BatchRow:
    name = account_name(record)
    try:
        data = merged_tables(path, line, record, settings)
        account = parse_account(name, Table(data, path, f"line {line}"), settings.archive)
    except ConfigError as exc:
        return BatchRow(line, name, error=str(exc))
    return BatchRow(line, name, account)


def merged_tables(path: Path, line: int, record: dict[str, str],
                  settings: Settings) -> dict[str, Any]:
    values = {key: (value or "").strip() for key, value in record.items() if key}
    source: dict[str, Any] = dict(settings.batch.source)
    for column, key in _SOURCE_COLUMNS.items():
        if values.get(column):
            source[key] = values[column]
    if values.get("source_port"):
        port = values["source_port"]
        if not port.isdigit() or not 1 <= int(port) <= MAX_PORT:
            raise ConfigError(f"{path}: line {line}: source_port must be a number from 1 to "
                              f"{MAX_PORT}, got {port!r}")
        source["port"] = int(port)
    if values.get("source_secret"):
        if Secret(values["source_secret"]).is_literal:
            raise ConfigError(f"{path}: line {line}: source_secret must be a reference "
                              "(env:NAME, file:PATH or keyring:SERVICE/USER), not a password")
        source["password"] = values["source_secret"]
    for column in ("include", "exclude"):
        if values.get(column):
            source[column] = [part.strip() for part in values[column].split(";") if part]
    data: dict[str, Any] = {"source": source}
    if settings.batch.target is not None:
        target = dict(settings.batch.target)
        target["username"] = values.get("target_user") or target.get("username") or ""
        if not target["username"]:
            raise ConfigError(f"{path}: line {line}: target_user is required")
        data["target"] = target
    return data
