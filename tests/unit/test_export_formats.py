"""The pieces of `migrator export` that need no archive: mboxrd quoting, names, the journal."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from migrator.engine.export.files import Settler
from migrator.engine.export.job import place_folders
from migrator.engine.export.journal import NAME, ForeignDestination, open_journal
from migrator.engine.export.mbox import MboxChanged, MboxFolder, entry, from_line, quote
from migrator.engine.export.names import eml_name, folder_path, maildir_info, safe_level
from migrator.engine.export.plan import FolderPlan, Window
from migrator.errors import ExitStatus, LockedError
from tests.cli_runner import run_cli, write_config

_QUOTED = re.compile(rb"^>(>*From )", re.MULTILINE)
KEY = "ab" * 32


@pytest.mark.parametrize("data", [
    b"From me\r\n\r\nFrom you\r\n>From them\r\n>>From all\r\n",
    b"Subject: x\n\nFrom\nFrom:\n From \n>From\n>From \nxFrom \n",
    b"Subject: no final break\r\n\r\nFrom the end",
    b"",
])
def test_mboxrd_quoting_is_undone_by_removing_one_angle_bracket(data):
    quoted = quote(data)
    assert not re.search(rb"^From ", quoted, re.MULTILINE)  # no line can start a message
    assert _QUOTED.sub(rb"\1", quoted) == data


def test_an_mbox_entry_is_from_line_message_and_one_empty_line():
    when = datetime(2021, 3, 4, 6, 6, 7, tzinfo=timezone(timedelta(hours=1)))
    assert from_line(when) == b"From MAILER-DAEMON Thu Mar  4 05:06:07 2021\n"
    assert entry(b"a\r\n", when) == (from_line(when) + b"a\r\n\n", False)
    assert entry(b"a", None) == (b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\na\n\n", True)


@pytest.mark.parametrize(("fmt", "name", "delimiter", "path"), [
    ("maildir", "INBOX", ".", ""),
    ("maildir", "INBOX.Sent", ".", ".Sent"),
    ("maildir", "Lists/v1.2", "/", ".Lists.v1_2"),
    ("maildir", "Reisen.Überblick", ".", ".Reisen.Überblick"),
    ("mbox", "Archive/2019/Q1", "/", "Archive.sbd/2019.sbd/Q1"),
    ("mbox", "INBOX", None, "INBOX"),
    ("eml", "Archive/2019", "/", "Archive/2019"),
    ("eml", ".hidden/..", "/", "_hidden/_."),
    ("eml", "a\\b\x07c", "/", "a_b_c"),
    ("mbox", "Old.sbd", "/", "Old.sbd_"),
])
def test_folder_paths_per_format(fmt, name, delimiter, path):
    assert folder_path(fmt, name, delimiter) == path


def test_a_long_folder_name_is_cut_on_a_character_boundary():
    level = safe_level("ü" * 300)
    assert len(level.encode()) <= 200 and set(level) == {"ü"}


def test_maildir_flags_and_eml_names():
    assert maildir_info("$Forwarded \\Seen \\Answered \\Deleted \\Flagged \\Draft") == ":2,DFRST"
    assert maildir_info("") == ":2,"
    when = datetime(2019, 3, 4, 15, 30, tzinfo=UTC)
    name = eml_name(when, "=?iso-8859-1?q?Gr=FC=DFe?= a/b: c?", KEY)
    assert name == f"2019-03-04 153000 Grüße a_b_ c_ {KEY[:12]}.eml"
    assert eml_name(None, None, KEY + ".2") == f"undated (no subject) {KEY[:12]}-2.eml"


def test_window_is_since_inclusive_and_before_exclusive():
    day = datetime(2024, 1, 31, tzinfo=UTC)
    window = Window(day, day + timedelta(days=1))
    assert window.admits(day) and not window.admits(day + timedelta(days=1))
    assert not window.admits(None) and Window().admits(None)


def test_folders_that_collide_keep_the_paths_they_were_given_first(tmp_path: Path):
    journal = open_journal(tmp_path, "eml", "alice")
    place_folders(journal, "eml", [FolderPlan("x\x01", None), FolderPlan("x\x02", None)])
    assert journal.paths == {"x\x01": "x_", "x\x02": "x_ (2)"}
    journal.close()
    journal = open_journal(tmp_path, "eml", "alice")
    place_folders(journal, "eml", [FolderPlan("x\x00", None), FolderPlan("x\x01", None),
                                   FolderPlan("x\x02", None)])
    assert journal.paths == {"x\x01": "x_", "x\x02": "x_ (2)", "x\x00": "x_ (3)"}
    journal.close()


def test_the_journal_drops_a_line_a_kill_cut_short(tmp_path: Path):
    journal = open_journal(tmp_path, "mbox", "alice")
    journal.assign({"INBOX": "INBOX"})
    journal.commit("INBOX", [KEY], end=120)
    journal.close()
    with open(tmp_path / NAME, "ab") as handle:
        handle.write(b'{"done": "INBOX", "keys": ["cd')

    journal = open_journal(tmp_path, "mbox", "alice")

    assert journal.done == {"INBOX": {KEY}} and journal.mbox["INBOX"].end == 120
    assert (tmp_path / NAME).read_bytes().endswith(b"\n")
    journal.close()


def test_one_export_at_a_time_and_only_into_its_own_kind_of_dest(tmp_path: Path):
    journal = open_journal(tmp_path, "mbox", "alice")
    with pytest.raises(LockedError):
        open_journal(tmp_path, "mbox", "alice")
    journal.close()
    with pytest.raises(ForeignDestination, match="holds a mbox export of account alice"):
        open_journal(tmp_path, "mbox", "bob")


def _mbox_with_tail(tmp_path: Path, *, intent: bool) -> MboxFolder:
    journal = open_journal(tmp_path, "mbox", "alice")
    journal.assign({"INBOX": "INBOX"})
    (tmp_path / "INBOX").write_bytes(b"x" * 100)
    journal.commit("INBOX", [KEY], end=100)
    if intent:
        journal.intend("INBOX", 100)
    with open(tmp_path / "INBOX", "ab") as handle:
        handle.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nhalf a mess")
    return MboxFolder(tmp_path, "INBOX", Settler(tmp_path), Counter(), journal)


def test_a_resumed_mbox_loses_the_tail_its_unfinished_batch_left(tmp_path: Path):
    folder = _mbox_with_tail(tmp_path, intent=True)
    folder.open()
    folder.close()
    folder.journal.close()
    assert (tmp_path / "INBOX").read_bytes() == b"x" * 100


def test_an_mbox_grown_by_someone_else_is_not_touched(tmp_path: Path):
    folder = _mbox_with_tail(tmp_path, intent=False)
    before = (tmp_path / "INBOX").read_bytes()
    with pytest.raises(MboxChanged, match="was changed since the last export"):
        folder.open()
    folder.close()
    folder.journal.close()
    assert (tmp_path / "INBOX").read_bytes() == before


def test_export_without_an_archive_says_so_and_creates_nothing(tmp_path: Path):
    config = write_config(tmp_path, f'[archive]\npath = "{tmp_path / "archive"}"\n')
    result = run_cli("-c", config, "export", "alice", "--format", "mbox", tmp_path / "out")
    assert result.status == ExitStatus.MANIFEST
    assert result.stderr == f"migrator: error: no archive at {tmp_path / 'archive'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["migrator.toml"]
