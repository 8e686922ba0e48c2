"""Flags through an mbox export: recorded in DEST's journal, read back by the mbox reader."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from migrator.engine.export.files import Settler
from migrator.engine.export.journal import NAME, open_journal
from migrator.engine.export.mbox import MboxFolder
from migrator.engine.export.plan import Item
from migrator.errors import SourcePathError
from migrator.sources.files.mbox import MboxSource

WHEN = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
MESSAGES = [  # (bytes, flags as the archive keeps them)
    (b"Subject: plain\r\n\r\nhello\r\n", "\\Answered \\Seen $Label1"),
    (b"Subject: from\r\n\r\nFrom the start\r\n>From quoted\r\n", "\\Draft \\Flagged"),
    (b"Subject: no break\r\n\r\nFrom here", "Junk \\Seen"),
    (b"Subject: twin\r\n\r\nsame\r\n", "\\Flagged"),
    (b"Status: RO\r\nX-Status: A\r\nSubject: headers\r\n\r\nx\r\n", ""),
]
TWIN = (b"Subject: twin\r\n\r\nsame\r\n", "\\Seen")  # the same bytes, exported in a later run


def _export(dest: Path, messages: list[tuple[bytes, str]]) -> None:
    """One export run of INBOX into `dest`, as the job drives an MboxFolder."""
    journal = open_journal(dest, "mbox", "alice")
    journal.assign({} if "INBOX" in journal.paths else {"INBOX": "INBOX"})
    folder = MboxFolder(dest, "INBOX", Settler(dest), Counter(), journal)
    folder.open()
    keys = []
    for data, flags in messages:
        sha = hashlib.sha256(data).hexdigest()
        key = sha if sha not in journal.done.get("INBOX", ()) else f"{sha}.1"
        folder.add(Item(key, sha, len(data), WHEN, flags), data, WHEN)
        keys.append(key)
    journal.commit("INBOX", keys, folder.flush())
    folder.close()
    journal.close()


def _imported(path: Path) -> Counter[tuple[bytes, frozenset[str]]]:
    source = MboxSource(str(path))
    found: Counter[tuple[bytes, frozenset[str]]] = Counter()
    for folder in source.folders():
        assert folder.name == "INBOX"  # the journal is never a folder
        for message in source.messages(folder):
            found[message.read(), frozenset(message.flags)] += 1
    return found


def test_every_flag_comes_back_from_the_journal_across_runs_and_twins(tmp_path: Path):
    _export(tmp_path, MESSAGES)
    _export(tmp_path, [TWIN])

    wanted = Counter((data if data.endswith(b"\n") else data + b"\n", frozenset(flags.split()))
                     for data, flags in [*MESSAGES, TWIN])
    assert _imported(tmp_path) == wanted
    assert _imported(tmp_path / "INBOX") == wanted  # the file alone finds its journal too
    # the recorded flags win over the message's own Status headers (unchanged since export)
    assert (MESSAGES[4][0], frozenset()) in wanted


def test_a_journal_without_flags_still_opens_and_headers_give_the_flags(tmp_path: Path):
    """Journals written before flags were recorded: both export and import still read them."""
    data = MESSAGES[4][0]
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "INBOX").write_bytes(b"From MAILER-DAEMON Thu Mar  4 05:06:07 2021\n"
                                     + data + b"\n")
    end = (tmp_path / "INBOX").stat().st_size
    lines = [{"export": 1, "format": "mbox", "account": "alice"},
             {"folder": "INBOX", "path": "INBOX"}, {"intent": "INBOX", "start": 0},
             {"done": "INBOX", "keys": [sha], "end": end}]
    (tmp_path / NAME).write_text("".join(json.dumps(line) + "\n" for line in lines))

    journal = open_journal(tmp_path, "mbox", "alice")
    assert journal.done == {"INBOX": {sha}} and journal.mbox["INBOX"].end == end
    journal.close()
    assert _imported(tmp_path) == Counter({(data, frozenset({"\\Seen", "\\Answered"})): 1})
    _export(tmp_path, [MESSAGES[0]])  # an old export grows with flags recorded from now on
    assert _imported(tmp_path)[MESSAGES[0][0], frozenset(MESSAGES[0][1].split())] == 1


def test_the_journal_itself_is_refused_as_an_mbox(tmp_path: Path):
    _export(tmp_path, MESSAGES[:1])
    with pytest.raises(SourcePathError, match="journal of an export"):
        MboxSource(str(tmp_path / NAME))
