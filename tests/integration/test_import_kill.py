"""kill -9 during an import, then the same import again: nothing lost, nothing twice.

migrator runs in its own process; the test hook (MIGRATOR_TEST_KILL_AT, inert otherwise)
kills it at `import-read` (a message handed to the archive writer), `blobs-durable` (a batch's
blobs synced, its rows not committed) and `import-committed` (a batch's rows committed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.engine.export.mbox import entry
from migrator.engine.export.names import folder_path
from migrator.testhook import ENV as KILL_AT
from tests.integration.import_world import contents, file_source, import_config, rows

pytestmark = pytest.mark.world
ROOT = Path(__file__).parents[2]
TIMEOUT = 120


@pytest.fixture(scope="module")
def mbox_tree(tmp_path_factory, corpus) -> Path:
    """The corpus (108 messages in 5 folders) as a Thunderbird-style mbox tree."""
    root = tmp_path_factory.mktemp("kill-source") / "mail"
    for item in corpus:
        path = root / folder_path("mbox", item.folder, ".")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(entry(item.raw, item.internaldate)[0])
    return root


def pull(config: Path, kill_at: str | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(KILL_AT, None)
    if kill_at:
        env[KILL_AT] = kill_at
    done = subprocess.run([sys.executable, "-m", "migrator", "-c", str(config), "pull", "old"],
                          env=env, cwd=ROOT, capture_output=True, timeout=TIMEOUT, check=False)
    return done.returncode


@pytest.fixture(scope="module")
def reference(mbox_tree, tmp_path_factory):
    """What an import never interrupted archives."""
    work = tmp_path_factory.mktemp("kill-reference")
    assert pull(import_config(work, {"old": file_source("mbox", mbox_tree)})) == 0
    return contents(work / "archive", "old")


@pytest.mark.parametrize("kill_at", ["import-read:40", "blobs-durable:2",
                                     "import-committed:3"])
def test_killed_then_run_again_archives_everything_once(mbox_tree, reference, tmp_path,
                                                        kill_at):
    config = import_config(tmp_path, {"old": file_source("mbox", mbox_tree)})

    assert pull(config, kill_at) == -signal.SIGKILL  # it really died there
    partial = sum(len(found) for found in rows(tmp_path / "archive", "old").values())
    assert partial < 108
    assert pull(config) == 0

    assert contents(tmp_path / "archive", "old") == reference
    keys = [(folder, key) for folder, found in rows(tmp_path / "archive", "old").items()
            for *_, key in found]
    assert len(keys) == len(set(keys)) == 108
