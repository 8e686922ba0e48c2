"""One module per command; each offers `register(subparsers, common)` setting `func`.

A command's module is imported only when that command runs (`modules(...)`): a no-op
`migrator backup` does not pay for loading push, export or repair. `migrator --help` (or a
command line naming no known command) loads them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from types import ModuleType

# command name -> its module here, in the order `migrator --help` lists them
COMMANDS = {"config": "config_check", "status": "status", "verify": "verify",
            "repair": "repair", "pull": "pull", "backup": "backup", "batch": "batch",
            "push": "push", "migrate": "migrate", "export": "export", "auth": "auth",
            "search": "search", "show": "show", "index": "index",
            "worker": "worker"}


def modules(names: Iterable[str] | None = None) -> list[ModuleType]:
    """The modules of the commands `names` (default: every command)."""
    wanted = None if names is None else set(names)
    return [import_module(f"{__name__}.{module}") for name, module in COMMANDS.items()
            if wanted is None or name in wanted]
