"""What a command needs, built lazily from the parsed arguments and the environment."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrator import config
from migrator.cli.environment import Environment
from migrator.engine.events import Emit

if TYPE_CHECKING:  # SQLAlchemy is loaded when a command first asks for the manifest, so a
    # re-run the no-op probe settles never loads it (engine/imap/noop_probe.py)
    from migrator.archive.blobs import BlobStore
    from migrator.archive.db import Manifest

MIGRATIONS = frozenset({"migrate", "batch", "worker"})  # see Context.indexes_as_it_archives


@dataclass
class Context:
    env: Environment
    args: argparse.Namespace
    emit: Emit
    _settings: config.Settings | None = field(default=None, repr=False)
    _manifest: Manifest | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        explicit = getattr(self.args, "config", None)
        return Path(explicit) if explicit else self.env.default_config()

    def settings(self) -> config.Settings:
        if self._settings is None:
            self._settings = config.load(self.config_path)
            if self.dry_run:
                self._settings = without_token_saving(self._settings)
        return self._settings

    @property
    def dry_run(self) -> bool:
        return bool(getattr(self.args, "dry_run", False))

    def manifest(self) -> Manifest:
        """The manifest; for a dry run a read-only one that creates and upgrades nothing."""
        if self._manifest is None:
            archive = self.settings().archive
            if self.dry_run:
                from migrator.archive.readonly import open_manifest_readonly

                self._manifest = open_manifest_readonly(archive.database)
            else:
                from migrator.archive.db import open_manifest

                self._manifest = open_manifest(archive.database)
                if self.indexes_as_it_archives(archive):
                    from migrator.archive.search_index import attach_indexer

                    attach_indexer(self._manifest, self.store())
        return self._manifest

    def indexes_as_it_archives(self, archive: config.ArchiveSettings) -> bool:
        """Whether this command indexes messages for search as it stores them. A migration
        (`migrate`, `batch run`, `worker`) leaves that to the first `search` or `migrator
        index` unless `index_during_migrate` says otherwise: on the bench mailbox the index
        was 8-15% of a migrate's wall time, for archives that are often never searched."""
        if not archive.search_index:
            return False
        return archive.index_during_migrate or self.command not in MIGRATIONS

    @property
    def command(self) -> str:
        return str(getattr(self.args, "command", ""))

    def manifest_missing(self) -> bool:
        """True when there is no manifest yet (no SQLite file, or a server database without
        its schema): a command that only looks must then create nothing."""
        from migrator.archive.db import manifest_exists

        return self._manifest is None and not manifest_exists(self.settings().archive.database)

    def store(self) -> BlobStore:
        from migrator.archive.blobs import BlobStore

        archive = self.settings().archive
        return BlobStore(archive.path, archive.compression)

    def out(self, text: str = "") -> None:
        self.env.stdout.write(text + "\n")

    def out_json(self, value: Any) -> None:
        self.env.stdout.write(json.dumps(value, indent=None, default=_json_value) + "\n")

    def close(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None


def _json_value(value: Any) -> Any:
    """Times as ISO 8601 (with their offset when they have one); anything else as text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def without_token_saving(settings: config.Settings) -> config.Settings:
    """The settings for a dry run: a token refreshed on the way is not written to its cache."""

    def endpoint(found: config.Endpoint) -> config.Endpoint:
        if found.oauth is None:
            return found
        return replace(found, oauth=replace(found.oauth, save_tokens=False))

    accounts = {name: replace(account, source=endpoint(account.source),
                              target=endpoint(account.target) if account.target else None)
                for name, account in settings.accounts.items()}
    return replace(settings, accounts=accounts)
