"""The file-source readers (mbox, Maildir, .eml) on files written here and by the exporter's
own functions, and the config kinds that name them."""

from __future__ import annotations

import mailbox
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from migrator import config
from migrator.engine.export.mbox import entry
from migrator.engine.export.names import folder_path, maildir_info
from migrator.errors import ConfigError, SourcePathError
from migrator.sources.files import READERS, FileFolder, open_source

SAMPLE = Path(__file__).parents[1] / "data" / "mbox" / "netscape-jwz.mbox"
WHEN = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
ODD = [
    b"Subject: plain\r\n\r\nbody\r\n",
    b"Subject: from lines\n\nFrom the start\n>From quoted once\n>>From twice\nFrom \n",
    b"Subject: no final break\r\n\r\nlast line",
    b"Subject: ends empty\n\nx\n\n",
    b"Subject: caf\xc3\xa9 8-bit\r\n\r\n" + b"x" * 2000 + b"\r\n",
    b"Subject: plain\r\n\r\nbody\r\n",  # a twin of the first
]


def _mbox(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(b"".join(entry(data, WHEN)[0] for data in messages))
    return path


def _read(kind: str, path: Path, folder: str = "INBOX") -> list:
    source = open_source(kind, str(path))
    try:
        return list(source.messages(FileFolder(folder)))
    finally:
        source.close()


def test_every_config_file_kind_has_a_reader():
    assert set(config.FILE_KINDS) <= set(READERS)


def test_an_exported_mbox_reads_back_byte_for_byte_but_a_missing_final_newline(tmp_path):
    messages = _read("mbox", _mbox(tmp_path / "box", ODD))

    assert [m.read() for m in messages] == [
        data if data.endswith(b"\n") else data + b"\n" for data in ODD]
    assert all(m.internaldate == WHEN for m in messages)
    assert messages[5].key == messages[0].key + ".2"  # twins keep apart


def test_mbox_keys_survive_an_append_and_a_removal_elsewhere(tmp_path):
    before = [m.key for m in _read("mbox", _mbox(tmp_path / "a", ODD[:4]))]
    grown = [m.key for m in _read("mbox", _mbox(tmp_path / "b", [*ODD[:4], b"S: new\n\nn\n"]))]
    shrunk = [m.key for m in _read("mbox", _mbox(tmp_path / "c", ODD[1:4]))]

    assert grown[:4] == before and grown[4] not in before
    assert shrunk == before[1:]


def test_mbox_flags_come_from_status_headers_which_stay_in_the_message(tmp_path):
    data = (b"Status: RO\nX-Status: AF\nSubject: s\n\nbody\nStatus: D\n",
            b"Status: O\nSubject: unread\n\nb\n",
            b"X-Mozilla-Status: 0003\nSubject: t\n\nb\n",
            b"X-Status: TD\nSubject: d\n\nb\n")
    messages = _read("mbox", _mbox(tmp_path / "box", list(data)))

    assert [m.flags for m in messages] == [
        ("\\Answered", "\\Flagged", "\\Seen"), (), ("\\Answered", "\\Seen"),
        ("\\Deleted", "\\Draft")]
    assert [m.read() for m in messages] == list(data)


@pytest.mark.parametrize("before, after", [
    # Thunderbird marks a message read in place
    (b"X-Mozilla-Status: 0000\nX-Mozilla-Status2: 00000000\nSubject: s\n\nb\n",
     b"X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nSubject: s\n\nb\n"),
    # mutt adds its Status lines at the end of the header (CRLF and LF)
    (b"Subject: s\r\nFrom: a@b\r\n\r\nbody\r\n",
     b"Subject: s\r\nFrom: a@b\r\nStatus: RO\r\nX-Status: A\r\n\r\nbody\r\n"),
    (b"Subject: s\nStatus: O\n\nStatus: RO in the body stays\n",
     b"Status: RO\nSubject: s\n\nStatus: RO in the body stays\n"),
    # a tag added, folded over two lines
    (b"X-Mozilla-Keys:\nSubject: s\n\nb\n",
     b"X-Mozilla-Keys: $label1\n  work\nSubject: s\n\nb\n"),
])
def test_a_message_whose_client_rewrote_its_flag_headers_keeps_its_key(tmp_path, before, after):
    first, = _read("mbox", _mbox(tmp_path / "before", [before]))
    then, = _read("mbox", _mbox(tmp_path / "after", [after]))

    assert then.key == first.key
    assert then.read() == after  # the bytes are the file's: only the key ignores those lines


def test_mbox_keys_of_messages_without_flag_headers_are_their_sha256_as_before(tmp_path):
    """Keys of earlier versions hashed the whole message: unchanged where no flag header is,
    and given as the former key where one is (so that row is found, not imported again)."""
    import hashlib

    plain, flagged = b"Subject: s\n\nb\n", b"Status: RO\nSubject: s\n\nb\n"
    messages = _read("mbox", _mbox(tmp_path / "box", [plain, flagged]))

    whole = [hashlib.sha256(data).hexdigest() for data in (plain, flagged)]
    assert (messages[0].key, messages[0].former_keys) == (whole[0], ())
    assert messages[1].key == whole[0] + ".2"  # the same message less its flags: a twin
    assert messages[1].former_keys == (whole[1],)


def test_the_sample_mbox_has_what_python_mailbox_finds(tmp_path):
    messages = _read("mbox", SAMPLE)
    box = mailbox.mbox(SAMPLE)
    unquote = re.compile(rb"^>(>*From )", re.MULTILINE)

    assert len(messages) == len(box) == 29
    assert [m.read() for m in messages] == [unquote.sub(rb"\1", box.get_bytes(key))
                                            for key in box.keys()]  # noqa: SIM118
    assert sum("\\Flagged" in m.flags for m in messages) == 7  # X-Mozilla-Status 0x0004
    assert messages[3].internaldate == datetime(1996, 6, 3, 12, 50, 27, tzinfo=UTC)


def test_a_thunderbird_tree_is_read_as_the_export_names_it(tmp_path):
    names = ["INBOX", "Archive/2019", "Reisen/Überblick", "Sent"]
    for name in names:
        path = tmp_path / folder_path("mbox", name, "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        _mbox(path, [b"Subject: " + name.encode() + b"\n\nx\n"])
    (tmp_path / "Archive").touch()  # Thunderbird's empty parent of Archive.sbd
    (tmp_path / "Reisen").touch()
    (tmp_path / "INBOX.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->")
    (tmp_path / "Old.mbox").write_bytes(b"")

    source = open_source("mbox", str(tmp_path))

    assert [f.name for f in source.folders()] == sorted([*names, "Old"])


def _maildir_file(root: Path, sub: str, name: str, data: bytes) -> Path:
    for part in ("cur", "new", "tmp"):
        (root / part).mkdir(parents=True, exist_ok=True)
    path = root / sub / name
    path.write_bytes(data)
    os.utime(path, (WHEN.timestamp(), WHEN.timestamp()))
    return path


def test_maildir_flags_keywords_keys_and_dates(tmp_path):
    _maildir_file(tmp_path, "cur", "1.a.host:2,FRS" + "bc", b"one")
    _maildir_file(tmp_path, "cur", "2.b.host,S=3:2,DT", b"two")
    _maildir_file(tmp_path, "new", "3.c.host", b"three")
    _maildir_file(tmp_path, "tmp", "4.d.host", b"unfinished")
    (tmp_path / "dovecot-keywords").write_text("0 $Forwarded\n1 Work\n2 $Junk\n")

    messages = _read("maildir", tmp_path)

    assert [(m.key, m.flags, m.read()) for m in messages] == [
        ("1.a.host", ("$Junk", "Work", "\\Answered", "\\Flagged", "\\Seen"), b"one"),
        ("2.b.host,S=3", ("\\Deleted", "\\Draft"), b"two"),
        ("3.c.host", (), b"three")]
    assert {m.internaldate for m in messages} == {WHEN}


def test_maildir_flags_are_what_the_export_writes():
    from migrator.sources.files.maildir import flags_of

    flags = "\\Answered \\Deleted \\Draft \\Flagged \\Seen"
    assert " ".join(flags_of(maildir_info(flags)[1:], {})) == flags


def test_maildir_folders_maildirplusplus_utf7_and_nested(tmp_path):
    for path in ("", ".Sent", ".Archive.2019", ".Reisen.&AMw-berblick", ".R&D", "Plain/Sub"):
        _maildir_file(tmp_path / path if path else tmp_path, "cur", "1.x:2,", b"m")

    source = open_source("maildir", str(tmp_path))

    assert [f.name for f in source.folders()] == sorted(
        ["INBOX", "Sent", "Archive/2019", "Reisen/Ìberblick", "R&D", "Plain/Sub"])


def test_eml_tree_and_single_file(tmp_path):
    for folder, name in (("INBOX", "a.eml"), ("Archive/2019", "b.eml"), ("Archive/2019", "c.EML")):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_bytes(name.encode())
    (tmp_path / "INBOX" / "notes.txt").write_bytes(b"not mail")

    source = open_source("eml", str(tmp_path))

    assert [f.name for f in source.folders()] == ["Archive/2019", "INBOX"]
    assert [m.read() for m in source.messages(FileFolder("Archive/2019"))] == [b"b.eml", b"c.EML"]
    single = _read("eml", tmp_path / "INBOX" / "a.eml")
    assert [(m.key, m.flags) for m in single] == [("a.eml", ())]


@pytest.mark.parametrize("kind", ["mbox", "maildir", "eml"])
def test_a_missing_path_is_a_clear_config_error(kind, tmp_path):
    with pytest.raises(SourcePathError, match="no such"):
        open_source(kind, str(tmp_path / "nowhere"))


def _config(tmp_path: Path, source: str) -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(f'[archive]\npath = "{tmp_path}"\n[accounts.old.source]\n{source}\n')
    return config.load(path)


def test_config_takes_a_path_relative_to_the_file(tmp_path):
    settings = _config(tmp_path, 'kind = "mbox"\npath = "mail/old.mbox"\nexclude = ["Trash"]')
    source = settings.account("old").source

    assert (source.kind, source.path, source.exclude) == ("mbox", tmp_path / "mail/old.mbox",
                                                          ("Trash",))
    assert source.is_file


def test_config_without_a_path_or_with_a_host_says_so(tmp_path):
    with pytest.raises(ConfigError, match=r"accounts\.old\.source\.path: is required for a "
                                          r"maildir source"):
        _config(tmp_path, 'kind = "maildir"')
    with pytest.raises(ConfigError, match=r"accounts\.old\.source\.host: unknown key"):
        _config(tmp_path, 'kind = "eml"\npath = "x"\nhost = "imap.example.org"')


def test_a_key_too_long_for_the_manifest_is_kept_as_its_hash():
    from migrator.engine.files.records import KEY_LIMIT, stored_key

    short, long = "1.a.host", "x" * (KEY_LIMIT + 1)
    assert stored_key(short) == short
    assert stored_key(long).startswith("sha256:") and len(stored_key(long)) <= KEY_LIMIT
    assert stored_key(long) == stored_key("x" * (KEY_LIMIT + 1)) != stored_key(long + "y")
