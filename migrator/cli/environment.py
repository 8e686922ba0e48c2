"""What the CLI needs from the outside world, injected so tests can replace it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


def _default_config() -> Path:
    explicit = os.environ.get("MIGRATOR_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("migrator.toml")
    if local.exists():
        return local
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "migrator" / "config.toml"


@dataclass
class Environment:
    """Streams, terminal detection, clock and default config location."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stderr_isatty: bool | None = None
    clock: Callable[[], float] = time.monotonic
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    default_config: Callable[[], Path] = _default_config

    def __post_init__(self) -> None:
        if self.stderr_isatty is None:
            isatty = getattr(self.stderr, "isatty", None)
            self.stderr_isatty = bool(isatty and isatty())
