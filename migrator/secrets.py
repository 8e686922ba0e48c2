"""Secret references (`env:NAME`, `file:PATH`, `keyring:SERVICE/USER`), resolved only when used.

A config file names where a password lives, never the password itself; the value is fetched
at the last moment and never stored, logged or put into an exception.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from migrator import redact
from migrator.errors import SecretError

SCHEMES = ("env", "file", "keyring")


@dataclass(frozen=True)
class Secret:
    """A reference to a secret; `where` names the config key for error messages."""

    reference: str = field(repr=False)
    where: str = ""

    @property
    def is_literal(self) -> bool:
        scheme, sep, _ = self.reference.partition(":")
        return not (sep and scheme in SCHEMES)

    def describe(self) -> str:
        """What may be shown to a user: the reference, or a mask for a literal."""
        return "<literal, hidden>" if self.is_literal else self.reference

    def __repr__(self) -> str:
        return f"Secret({self.describe()!r})"

    def resolve(self) -> str:
        value = self._lookup()
        redact.register(value)
        return value

    def check(self) -> str | None:
        """Resolve the reference and forget the value, for `config check`.

        Raises SecretError as a run would (unset variable, unreadable file, no keyring entry);
        returns a note instead when this machine cannot tell: a keyring reference without
        the keyring package installed.
        """
        if self.reference.startswith("keyring:") and importlib.util.find_spec("keyring") is None:
            return (f"{self.where}: {self.reference} not checked: the keyring extra is not "
                    "installed (pip install 'migrator[keyring]'); a run needs it")
        self._lookup()
        return None

    def _lookup(self) -> str:
        if self.is_literal:
            return self.reference
        scheme, _, rest = self.reference.partition(":")
        if scheme == "env":
            return self._from_env(rest)
        if scheme == "file":
            return self._from_file(rest)
        return self._from_keyring(rest)

    def _from_env(self, name: str) -> str:
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"{self.where}: environment variable {name} is not set")
        return value

    def _from_file(self, path: str) -> str:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"{self.where}: cannot read secret file {path}: "
                              f"{exc.strerror}") from None
        return text.rstrip("\r\n")

    def _from_keyring(self, spec: str) -> str:
        service, sep, user = spec.partition("/")
        if not sep or not service or not user:
            raise SecretError(f"{self.where}: keyring reference must be keyring:SERVICE/USER")
        try:
            import keyring  # optional dependency
        except ImportError:
            raise SecretError(f"{self.where}: keyring reference needs the 'keyring' package "
                              "(pip install 'migrator[keyring]')") from None
        try:
            value = keyring.get_password(service, user)
        except Exception as exc:  # a backend error (no keyring daemon...) must stay one line
            raise SecretError(f"{self.where}: keyring lookup of {service}/{user} failed: "
                              f"{exc.__class__.__name__}") from None
        if value is None:
            raise SecretError(f"{self.where}: no keyring entry for {service}/{user}")
        return str(value)
