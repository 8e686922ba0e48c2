"""What Debian's PST tools report of a PST file: readpst (pst-utils) and pffexport (pff-tools).

The PST import's counts are checked against two independent readers: libpst's readpst and
libpff's own C exporter, run on the same file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data" / "pst"
# each sample and the name of its top folder (Outlook's "Top of Personal Folders")
SAMPLES = {"testPST.pst": "Début du fichier de données Outlook",
           "testPST_variousBodyTypes.pst": "Top of Outlook data file",
           "dist-list.pst": "Top of Personal Folders",
           "attachAndInline.pst": "Outlook データ ファイルのトップ",
           "msgInMsg.pst": "Outlook データ ファイルのトップ",
           "200-recipients.pst": "Outlook データ ファイルのトップ"}
_ITEM_DIR = re.compile(r"^[A-Za-z]+\d{5}$")  # pffexport's Message00001, Appointment00001, ...


def require(tool: str) -> str:
    """The tool's path; skipped where it is missing, a failure in CI (.ci/run installs it)."""
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} not installed (apt-get install pst-utils pff-tools)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have {tool}: {reason}")
        pytest.skip(reason)
    return path


def readpst_counts(pst: Path, out: Path) -> dict[str, int]:
    """E-mails per folder as readpst writes them (-S: one file per e-mail, named by number;
    -r: a directory per folder, the top one named after the data file; -D: deleted too;
    -t e: e-mail only)."""
    out.mkdir()
    subprocess.run([require("readpst"), "-D", "-r", "-S", "-t", "e", "-j0", "-q", "-o", str(out),
                    str(pst)], check=True, capture_output=True, timeout=120)
    counts: dict[str, int] = {}
    for top in out.iterdir():
        for directory in [top, *[p for p in top.rglob("*") if p.is_dir()]]:
            mails = [p for p in directory.iterdir() if p.is_file() and p.name.isdigit()]
            if mails:
                relative = directory.relative_to(top).as_posix()
                counts[top.name if relative == "." else relative] = len(mails)
    return counts


class PffExport:
    """The folder tree and items pffexport writes under the PST's top folder."""

    def __init__(self, pst: Path, out: Path, top: str) -> None:
        out.mkdir()
        subprocess.run([require("pffexport"), "-q", "-m", "all", "-t", str(out / "x"),
                        str(pst)], check=True, capture_output=True, timeout=120)
        export = out / "x.export"
        self.top = export / top
        self.folders: set[str] = set()
        self.items: dict[str, Counter[str]] = {}
        self._walk(self.top, "")

    def _walk(self, directory: Path, prefix: str) -> None:
        kinds: Counter[str] = Counter()
        for child in sorted(directory.iterdir()):
            if not child.is_dir():
                continue
            if _ITEM_DIR.match(child.name):
                kinds[child.name.rstrip("0123456789")] += 1
            else:
                name = prefix + child.name
                self.folders.add(name)
                self._walk(child, name + "/")
        self.items[prefix.rstrip("/")] = kinds

    def messages(self, folder: str) -> int:
        return self.items.get(folder, Counter())["Message"]

    def other_items(self) -> int:
        return sum(n for kinds in self.items.values() for kind, n in kinds.items()
                   if kind != "Message")

    def item_dir(self, folder: str, number: int) -> Path:
        base = self.top / folder if folder else self.top
        return base / f"Message{number:05d}"
