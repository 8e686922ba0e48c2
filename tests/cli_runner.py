"""Drive the real entry point in-process and capture what a user would see."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from migrator.cli.environment import Environment
from migrator.cli.main import run


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, tty: bool = False) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=stdout, stderr=stderr, stderr_isatty=tty,
                      default_config=lambda: Path("/nonexistent/migrator.toml"))
    status = run([str(arg) for arg in args], env)
    return Result(status, stdout.getvalue(), stderr.getvalue())


def write_config(directory: Path, body: str, name: str = "migrator.toml") -> Path:
    path = directory / name
    path.write_text(body, encoding="utf-8")
    return path
