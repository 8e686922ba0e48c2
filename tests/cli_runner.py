"""Drive the real entry point in-process and capture what a user would see."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.cli.environment import Environment
from migrator.cli.main import run


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, tty: bool = False,
            clock: Callable[[], float] | None = None) -> Result:
    """`tty`: stderr poses as a terminal (bars); `clock`: what the reporters read as time."""
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=stdout, stderr=stderr, stderr_isatty=tty,
                      default_config=lambda: Path("/nonexistent/migrator.toml"))
    if clock is not None:
        env.clock = clock
    status = run([str(arg) for arg in args], env)
    return Result(status, stdout.getvalue(), stderr.getvalue())


def write_config(directory: Path, body: str, name: str = "migrator.toml") -> Path:
    path = directory / name
    path.write_text(body, encoding="utf-8")
    return path


ERROR_PREFIXES = ("migrator: error: ", "migrator: failed: ")


def json_lines(result: Result) -> list[Any]:
    """What --json promises: stdout is JSON objects one per line, stderr error lines only."""
    for line in result.stderr.splitlines():
        assert line.startswith(ERROR_PREFIXES), f"not an error line on stderr: {line!r}"
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(item, dict | list) for item in objects), result.stdout
    return objects


def json_result(result: Result) -> Any:
    """The command's own JSON (the one line that is not a notice sent while it ran)."""
    found = [item for item in json_lines(result)
             if not (isinstance(item, dict) and "event" in item)]
    assert len(found) == 1, result.stdout
    return found[0]
