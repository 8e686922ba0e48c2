"""kill -9 of a running `migrator export` (a real subprocess) at chosen instants, then the
same command again: DEST must end up exactly as an export that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.testhook import ENV as KILL_AT
from tests.cli_runner import write_config
from tests.integration.export_world import tree

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120
FORMATS = ("maildir", "mbox", "eml")


@pytest.fixture(scope="module")
def config(tmp_path_factory, corpus):
    """The corpus (108 messages in 5 folders) archived with the ingest a pull uses."""
    work = tmp_path_factory.mktemp("export-kill")
    archive = work / "archive"
    manifest = open_manifest(f"sqlite:///{archive / 'manifest.sqlite'}")
    try:
        with manifest.session() as session:
            account = ensure_account(session, "alice", "imap")
            ids = {name: ensure_folder(session, account, name, delimiter=".").id
                   for name in sorted({item.folder for item in corpus})}
        for name, folder_id in ids.items():
            add_messages(manifest, BlobStore(archive), folder_id, [
                FetchedMessage(item.raw, uid=uid, uidvalidity=1, flags=item.flags,
                               internaldate=item.internaldate.isoformat())
                for uid, item in enumerate((i for i in corpus if i.folder == name), 1)])
    finally:
        manifest.close()
    return write_config(work, f"""
[archive]
path = "{archive}"

[accounts.alice.source]
kind = "imap"
host = "127.0.0.1"
username = "alice"
password = "env:UNUSED"
""")


def export(config: Path, fmt: str, dest: Path, kill_at: str | None = None
           ) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(KILL_AT, None)
    if kill_at:
        env[KILL_AT] = kill_at
    process = subprocess.Popen(
        [sys.executable, "-m", "migrator", "-c", str(config), "--json", "export", "alice",
         "--format", fmt, str(dest)], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, out.decode(), err.decode(errors="replace")


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """{format: tree} of exports that were never interrupted."""
    trees = {}
    for fmt in FORMATS:
        dest = tmp_path_factory.mktemp("reference") / fmt
        status, _, err = export(config, fmt, dest)
        assert status == 0, err
        trees[fmt] = tree(dest)
    return trees


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kill_at", ["export-message:40", "export-durable:2",
                                     "export-committed:3"])
def test_killed_at_a_named_instant_then_resumed(config, reference, tmp_path, fmt, kill_at):
    dest = tmp_path / "dest"

    status, _, _ = export(config, fmt, dest, kill_at)

    assert status == -signal.SIGKILL  # it really died there
    assert not list(dest.rglob(".tmp-*"))  # no half-written message is visible
    if fmt == "mbox" and kill_at.startswith("export-message"):
        _append_half_a_message(dest)
    status, out, err = export(config, fmt, dest)
    assert status == 0, err
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts.get("exported", 0) + counts.get("found_complete", 0) < 108  # resumed
    assert counts.get("already_exported", 0) > 0 or not kill_at.startswith("export-committed")
    assert tree(dest) == reference[fmt]  # identical to an uninterrupted export


def _append_half_a_message(dest: Path) -> None:
    """What a kill in the middle of a write leaves: the start of a message, cut off, at the
    end of the mbox the journal says a batch was being appended to."""
    records = [json.loads(line) for line in (dest / ".migrator-export").read_text().splitlines()]
    pending = [r["intent"] for r in records if "intent" in r][-1]
    with open(dest / pending, "ab") as handle:
        handle.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2015\nSubject: cut off\r\nhal")


def test_a_maildir_file_written_before_the_kill_is_not_written_again_after_a_flag_change(
        config, reference, tmp_path):
    dest = tmp_path / "dest"
    status, _, _ = export(config, "maildir", dest, "export-durable:2")
    assert status == -signal.SIGKILL
    journal = (dest / ".migrator-export").read_text()
    unrecorded = [p for p in dest.rglob("cur/*") if p.name.split(".")[1] not in journal]
    assert unrecorded  # durable files the journal does not know yet
    unrecorded[0].rename(unrecorded[0].with_name(unrecorded[0].name + "F"))  # a mail client

    status, _, err = export(config, "maildir", dest)

    assert status == 0, err
    assert len(tree(dest)) == len(reference["maildir"])  # the renamed file was not doubled
