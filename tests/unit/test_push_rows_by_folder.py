"""Recheck and verify read one target folder's rows at a time: the per-folder queries return
exactly what grouping every row of the account (as they did before) gave each folder."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from sqlalchemy import update

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest, open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.archive.manifest import MessageRow, utcnow
from migrator.engine.push.rows import (
    DONE,
    FAILED,
    INTENT,
    REFUSED,
    Outcome,
    done_sources,
    expected_in,
    in_state,
    live_count,
    write_intents,
    write_outcomes,
)

TARGET = "imap://target"
ALL = [None, INTENT, DONE, REFUSED, FAILED]
# message -> (source folder, push state, target folder of its push row, gone)
ROWS = {
    "a-new": ("A", None, None, False),
    "a-done": ("A", DONE, "A", False),
    "a-done-elsewhere": ("A", DONE, "X", False),  # an earlier push put it in X
    "a-done-nowhere": ("A", DONE, "", False),  # a done row without a folder: the plan's
    "a-refused": ("A", REFUSED, "A", False),
    "a-failed": ("A", FAILED, "A", False),
    "a-intent-elsewhere": ("A", INTENT, "X", False),  # not done: expected where planned
    "a-gone": ("A", DONE, "A", True),
    "b-done-in-a": ("B", DONE, "A", False),  # merged: pushed from B into A
    "b-new": ("B", None, None, False),
    "c-skipped": ("C", DONE, "A", False),  # a folder the plan skips: not checked at all
}
PLAN = {"A": "A", "B": "B"}  # source folder -> planned target folder (C is skipped)


def build(tmp_path: Path) -> tuple[Manifest, dict[str, int], dict[str, int]]:
    manifest = open_manifest(f"sqlite:///{tmp_path / 'manifest.sqlite'}")
    store = BlobStore(tmp_path)
    with manifest.session() as session:
        account = ensure_account(session, "bob", "imap")
        folders = {name: ensure_folder(session, account, name).id for name in "ABC"}
    ids: dict[str, int] = {}
    for uid, (name, (folder, state, target_folder, gone)) in enumerate(ROWS.items(), 1):
        add_messages(manifest, store, folders[folder], [
            FetchedMessage(f"Subject: {name}\r\n\r\n{name}\r\n".encode(), uid=uid,
                           uidvalidity=1)])
        with manifest.session() as session:
            ids[name] = session.query(MessageRow.id).filter(MessageRow.uid == uid).scalar()
            if state is not None:
                write_intents(session, TARGET, [(ids[name], target_folder)])
                write_outcomes(session, TARGET, [Outcome(ids[name], state, target_folder,
                                                         7, uid)])
            if gone:
                session.execute(update(MessageRow).where(MessageRow.id == ids[name])
                                .values(gone_at=utcnow()))
    return manifest, folders, ids


def test_each_target_folder_gets_what_grouping_every_row_gave_it(tmp_path: Path) -> None:
    manifest, folders, ids = build(tmp_path)
    targets = {folders[source]: where for source, where in PLAN.items()}
    names = {number: name for name, number in ids.items()}
    with manifest.session() as session:
        every = in_state(session, TARGET, targets, ALL)
        grouped: dict[str, list[str]] = defaultdict(list)
        for message in every:  # how verify grouped before
            where = message.target_folder if message.state == DONE else None
            grouped[where or targets[message.folder_id]].append(names[message.id])
        sources = done_sources(session, TARGET, targets)
        planned: dict[str, list[int]] = defaultdict(list)
        for folder_id, where in targets.items():
            planned[where].append(folder_id)
        by_folder = {folder: [names[m.id] for m in expected_in(
            session, TARGET, folder, planned.get(folder, []), sources.get(folder, set()))]
            for folder in {f for f in sources if f} | set(planned)}
        assert live_count(session, targets) == len(every)
        done_in_a = in_state(session, TARGET, sources["A"], [DONE], target_folder="A")

    assert by_folder == {"A": ["a-new", "a-done", "a-done-nowhere", "a-refused", "a-failed",
                               "a-intent-elsewhere", "b-done-in-a"],
                         "B": ["b-new"], "X": ["a-done-elsewhere"]}
    assert by_folder == dict(grouped)
    assert sources == {"A": {folders["A"], folders["B"]}, "X": {folders["A"]},
                       "": {folders["A"]}}
    assert [names[m.id] for m in done_in_a] == ["a-done", "b-done-in-a"]
