"""Imports point downward only (README, "How the code is laid out"): cli -> engine ->
sources/targets -> wire -> the bottom modules; the archive sits beside sources and targets.

An upward import is how a wire error ends up classified in the engine, or the engine grows a
terminal: every import in the package, at any depth in a module, is checked.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from migrator.errors import MigratorError

PACKAGE = Path(__file__).parents[2] / "migrator"
ABOVE_SOURCES = ("migrator.engine", "migrator.cli")
PACKAGES = ("migrator.cli", "migrator.engine", "migrator.sources", "migrator.targets",
            "migrator.wire", "migrator.archive")

# where a module lives -> what it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "migrator.cli": (),
    "migrator.engine": ("migrator.cli",),
    "migrator.sources": (*ABOVE_SOURCES, "migrator.archive", "migrator.targets"),
    "migrator.targets": (*ABOVE_SOURCES, "migrator.archive", "migrator.sources"),
    "migrator.archive": (*ABOVE_SOURCES, "migrator.sources", "migrator.targets"),
    "migrator.wire": (*ABOVE_SOURCES, "migrator.sources", "migrator.targets",
                      "migrator.archive"),
    "migrator": PACKAGES,  # the bottom modules (config, errors, retry, ...)
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, is_package: bool) -> str:
    """The FORBIDDEN key a module falls under: its sub-package, or "migrator"."""
    parts = module.split(".")
    if is_package and len(parts) == 2:
        return module
    return ".".join(parts[:2]) if len(parts) > 2 else "migrator"


def imported(text: str, module: str, is_package: bool) -> set[str]:
    """Every module name an import in `text` may load (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def upward(text: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of `module` (source `text`) that point upward."""
    forbidden = FORBIDDEN[layer_of(module, is_package)]
    if module == "migrator.__main__":  # the entry point runs the CLI
        return []
    return sorted(name for name in imported(text, module, is_package)
                  if any(name == bad or name.startswith(bad + ".") for bad in forbidden))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_downward(path):
    module = module_name(path)
    assert upward(path.read_text(), module, path.name == "__init__.py") == []


@pytest.mark.parametrize("module, text", [
    ("migrator.sources.imap", "from migrator.engine.imap.jobs import Batch"),
    ("migrator.targets.control", "import migrator.cli.main"),
    ("migrator.wire.imapconn", "from migrator import engine"),
    ("migrator.wire.imapconn", "from migrator.sources.imap import ImapSource"),
    ("migrator.archive.runs", "def f():\n    from migrator.engine import events\n"),
    ("migrator.engine.push.worker", "from migrator.cli.progress import Reporter"),
    ("migrator.engine.push.worker", "from ...cli import progress"),
    ("migrator.sources.pop3", "from ..engine.pop3 import pull"),
    ("migrator.sources.pop3", "from migrator.archive.manifest import MessageRow"),
    ("migrator.retry", "from migrator.wire.imapconn import classify"),
])
def test_an_upward_import_is_caught(module, text):
    assert upward(text, module) != []


@pytest.mark.parametrize("module, text", [
    ("migrator.engine.push.worker", "from migrator.targets.imap import AppendWriter"),
    ("migrator.engine.imap.pull", "from migrator.wire import imapconn"),
    ("migrator.sources.imap", "from migrator.wire.imapconn import retryable_reply"),
    ("migrator.sources.imap", "from .imap_wire import Wire"),
    ("migrator.wire.imapconn", "from migrator.retry import throttle_backoff"),
    ("migrator.cli.main", "from migrator.engine.events import Emit"),
])
def test_a_downward_import_is_allowed(module, text):
    assert upward(text, module) == []


ENTRY_PACKAGES = ("migrator.sources", "migrator.targets", "migrator.wire")


def entry_modules() -> list[str]:
    return sorted(module_name(path) for package in ENTRY_PACKAGES
                  for path in (PACKAGE / package.split(".")[1]).glob("*.py"))


@pytest.mark.parametrize("module", entry_modules())
def test_errors_defined_where_the_wire_enters_are_migrators_own(module):
    """Sources, targets and wire classify library errors into migrator's family; an error
    class of theirs outside it would reach the engine unclassified."""
    loaded = importlib.import_module(module)
    errors = [value for value in vars(loaded).values()
              if isinstance(value, type) and issubclass(value, BaseException)
              and value.__module__ == module]
    assert [e.__name__ for e in errors if not issubclass(e, MigratorError)] == []


def test_the_engine_does_not_classify_library_exceptions():
    """The engine catches migrator errors only: no library error types, no `classify`."""
    libraries = ("imaplib", "imapclient", "poplib", "socket", "ssl")
    for path in (PACKAGE / "engine").rglob("*.py"):
        names = imported(path.read_text(), module_name(path), path.name == "__init__.py")
        assert not [n for n in names if n.split(".")[0] in libraries], path
        assert not [n for n in names if n.endswith(".classify")], path
        assert "classify(" not in path.read_text(), path
