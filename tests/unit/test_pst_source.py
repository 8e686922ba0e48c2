"""PST reading without a PST file: flags from MAPI properties, INTERNALDATE's fallbacks, the
missing-libpff message. The property seam is libpff's record entry; real files are read in
tests/integration/test_pst_import.py."""

from __future__ import annotations

import sys
from datetime import datetime

import pytest

from migrator.errors import ConfigError, ExitStatus
from migrator.sources.files import pst
from migrator.sources.files import pst_props as props


class Entry:
    def __init__(self, value_type: int, value: object) -> None:
        self.value_type = value_type
        self.data_as_integer = value
        self.data_as_datetime = value
        self.data_as_string = value
        self.data = b"\x01" if value else b"\x00"


class Item:
    """A libpff item with the properties given: {tag: (value type, value)}."""

    number_of_record_sets = 1
    identifier = 42

    def __init__(self, values: dict[int, tuple[int, object]]) -> None:
        self._entries = {tag: Entry(*value) for tag, value in values.items()}

    def get_record_set(self, index: int) -> Item:
        return self

    def get_entry_by_type(self, tag: int) -> Entry | None:
        return self._entries.get(tag)


def bare_source() -> pst.PstSource:
    """A PstSource over no file: for the seams that need none."""
    return pst.PstSource(pst.Path("x.pst"), type("Handle", (), {"message_store": Item({})})())


def integers(**values: int) -> Item:
    tags = {"flags": props.MESSAGE_FLAGS, "verb": props.LAST_VERB_EXECUTED,
            "icon": props.ICON_INDEX, "status": props.FLAG_STATUS}
    return Item({tags[name]: (0x0003, value) for name, value in values.items()})


@pytest.mark.parametrize("item, expected", [
    (integers(), ()),
    (integers(flags=0x01), ("\\Seen",)),
    (integers(flags=0x08), ("\\Draft",)),
    (integers(flags=0x19), ("\\Seen", "\\Draft")),  # read, unsent, has attachments
    (integers(flags=0x01, status=2), ("\\Flagged", "\\Seen")),
    (integers(status=1), ()),  # follow-up complete is no longer flagged
    (integers(verb=102), ("\\Answered",)),  # reply to sender
    (integers(verb=103, flags=1), ("\\Answered", "\\Seen")),  # reply to all
    (integers(verb=104), ()),  # forwarded is not answered
    (integers(icon=0x105), ("\\Answered",)),  # the "replied" icon, where no verb is kept
    (integers(icon=0x106), ()),
])
def test_flags(item, expected):
    assert pst.flags(item) == expected


def test_internaldate_prefers_delivery_then_submit_then_creation():
    delivered, submitted, created = (datetime(2020, 1, d, 10, 0, 0, 123) for d in (3, 2, 1))
    times = {props.DELIVERY_TIME: delivered, props.CLIENT_SUBMIT_TIME: submitted,
             props.CREATION_TIME: created}
    for tag in (props.DELIVERY_TIME, props.CLIENT_SUBMIT_TIME, props.CREATION_TIME):
        item = Item({t: (0x0040, v) for t, v in times.items()})
        assert pst.internaldate(item) == times[tag].replace(microsecond=0, tzinfo=pst.UTC)
        del times[tag]
    assert pst.internaldate(Item({})) == pst.EPOCH


@pytest.mark.parametrize("message_class, mail", [
    ("IPM.Note", True), ("ipm.note.smime.multipartsigned", True), ("IPM", True),
    ("IPM.Schedule.Meeting.Request", True), ("REPORT.IPM.Note.NDR", True),
    ("IPM.Appointment", False), ("IPM.Contact", False), ("IPM.DistList", False),
    ("IPM.Task", False), ("IPM.StickyNote", False), ("IPM.Activity", False),
    ("IPM.Post", False),
])
def test_mail_classes_are_those_readpst_writes_as_mail(message_class, mail):
    assert pst.is_mail_class(message_class) is mail


def test_without_libpff_one_line_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pypff", None)  # what an absent module does to import
    with pytest.raises(ConfigError) as raised:
        pst.open_pst(tmp_path / "x.pst")
    assert str(raised.value) == \
        "reading PST files needs libpff-python: pip install 'migrator[pst]'"
    assert raised.value.exit_status is ExitStatus.CONFIG


def test_a_file_that_is_no_pst_is_one_line_naming_it(tmp_path):
    pytest.importorskip("pypff")
    path = tmp_path / "mail.pst"
    path.write_bytes(b"From a@b Mon Jan  1 00:00:00 2024\n\nnot a pst\n")
    with pytest.raises(pst.PstError) as raised:
        pst.open_pst(path)
    assert str(raised.value) == f"{path}: not a PST or OST file libpff can read"
    assert raised.value.exit_status is ExitStatus.CONFIG
    with pytest.raises(pst.PstError, match="no such PST file"):
        pst.open_pst(tmp_path / "missing.pst")


@pytest.mark.parametrize("entryid, node", [
    (bytes(20) + (0x8022).to_bytes(4, "little"), 0x8022),
    (b"short", None), (None, None),
])
def test_entryid_node(entryid, node):
    assert props.entryid_node(entryid) == node


def test_a_message_that_cannot_be_rebuilt_fails_alone_as_an_oserror():
    class DamagedFolder:
        def get_sub_message(self, index: int) -> Item:
            raise ValueError("bad heap")

    source = bare_source()
    message = source._file_message(DamagedFolder(), 0, integers(flags=1))
    assert message.key == "42" and message.flags == ("\\Seen",)
    with pytest.raises(OSError) as raised:
        message.read()
    assert raised.value.strerror == "cannot rebuild PST message 42: ValueError: bad heap"


def test_an_item_libpff_cannot_open_is_a_message_that_fails_when_read():
    class Folder:
        number_of_sub_messages = 2
        identifier = 8

        def get_sub_message(self, index: int) -> Item:
            if index == 0:
                raise OSError("pypff_folder_get_sub_message: unable to retrieve sub message 0")
            return integers(flags=1)

    source = bare_source()
    source._folders = {"Inbox": Folder()}
    first, second = source.messages(pst.FileFolder("Inbox"))
    assert first.key == "unreadable-0" and second.key == "42"
    with pytest.raises(OSError) as raised:
        first.read()
    assert raised.value.strerror == "PST item 1 of Inbox cannot be read (damaged?)"
    with pytest.raises(OSError, match=r"no folder Gone in x\.pst"):
        list(source.messages(pst.FileFolder("Gone")))


@pytest.mark.parametrize("version, read", [("20260926", True), ("20211114", True),
                                           ("20991231", False), ("20180714", False),
                                           ("unknown", False)])
def test_embedded_messages_are_read_only_with_a_checked_libpff_layout(version, read):
    from migrator.sources.files import pst_embedded

    class Pypff:
        @staticmethod
        def get_version() -> str:
            return version

    assert pst_embedded._layout_checked(Pypff) is read


def test_a_body_libpff_cannot_convert_is_read_raw_and_html_it_cannot_read_is_left_out():
    from migrator.sources.files import pst_message

    class Broken(Item):
        def __init__(self) -> None:
            super().__init__({})
            self._entries[props.BODY] = Entry(0x001F, 0)
            self._entries[props.BODY].data = "Grüße\x00".encode("utf-16-le")

        @property
        def plain_text_body(self) -> bytes:
            raise OSError("libpff_message_get_plain_text_body: unable to set message body.")

        @property
        def html_body(self) -> bytes:
            raise OSError("libpff_message_get_html_body: unable to read")

    assert pst_message._plain(Broken()) == "Grüße"
    assert pst_message._body(Broken(), "html_body") is None


def test_items_that_are_not_mail_are_left_out_and_counted_once_by_class():
    appointment = Item({props.MESSAGE_CLASS: (0x001F, "IPM.Appointment")})
    mail = Item({props.MESSAGE_CLASS: (0x001F, "IPM.Note"), props.MESSAGE_FLAGS: (0x0003, 1)})

    class Folder:
        number_of_sub_messages = 3
        identifier = 9

        def get_sub_message(self, index: int) -> Item:
            return [appointment, mail, appointment][index]

    source = bare_source()
    source._folders = {"Inbox": Folder()}
    for _ in range(2):  # listed twice (a repair lists again): still counted once
        assert [m.flags for m in source.messages(pst.FileFolder("Inbox"))] == [("\\Seen",)]
    assert source.skipped.by_class == {"IPM.Appointment": 2}
