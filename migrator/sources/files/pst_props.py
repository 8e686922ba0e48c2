"""MAPI properties of PST items read through libpff's record sets, by tag ([MS-OXPROPS]).

libpff-python names only a few properties (subject, bodies, transport headers); flags, message
class, addresses and attachment details are read here by their property tag.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# [MS-OXPROPS] property ids
MESSAGE_CLASS = 0x001A
SUBJECT = 0x0037
CLIENT_SUBMIT_TIME = 0x0039
SENT_REPRESENTING_NAME = 0x0042
SENT_REPRESENTING_EMAIL = 0x0065
SENT_REPRESENTING_SMTP = 0x5D02
IN_REPLY_TO = 0x1042
REFERENCES = 0x1039
INTERNET_MESSAGE_ID = 0x1035
SENDER_NAME = 0x0C1A
SENDER_EMAIL = 0x0C1F
SENDER_SMTP = 0x5D01
DISPLAY_NAME = 0x3001
DELIVERY_TIME = 0x0E06
MESSAGE_FLAGS = 0x0E07
MESSAGE_SIZE = 0x0E08
CREATION_TIME = 0x3007
ICON_INDEX = 0x1080
LAST_VERB_EXECUTED = 0x1081
FLAG_STATUS = 0x1090
INTERNET_CPID = 0x3FDE
BODY = 0x1000
CONTAINER_CLASS = 0x3613
IPM_SUBTREE_ENTRYID = 0x35E0
IPM_WASTEBASKET_ENTRYID = 0x35E3
IPM_SENTMAIL_ENTRYID = 0x35E4
IPM_APPOINTMENT_ENTRYID = 0x36D0  # like the next: kept on the root and the Inbox only
IPM_DRAFTS_ENTRYID = 0x36D7
ADDITIONAL_REN_ENTRYIDS = 0x36D8  # index 4: Junk E-mail ([MS-OXOSFLD] 2.2.4)
# recipients
RECIPIENT_TYPE = 0x0C15
EMAIL_ADDRESS = 0x3003
SMTP_ADDRESS = 0x39FE
# attachments
ATTACH_METHOD = 0x3705
ATTACH_FILENAME = 0x3704
ATTACH_LONG_FILENAME = 0x3707
ATTACH_MIME_TAG = 0x370E
ATTACH_CONTENT_ID = 0x3712

MSGFLAG_READ = 0x01
MSGFLAG_UNSENT = 0x08
FOLLOWUP_FLAGGED = 2  # PidTagFlagStatus: 1 complete, 2 flagged
ICON_REPLIED = 0x105  # PidTagIconIndex "replied" (0x106 is "forwarded": no IMAP flag)
VERBS_REPLIED = (102, 103)  # NOTEIVERB_REPLYTOSENDER, NOTEIVERB_REPLYTOALL

ATTACH_EMBEDDED_MSG = 5

_STRING_TYPES = (0x001E, 0x001F)
_INTEGER_TYPES = (0x0002, 0x0003, 0x0014)
_TIME_TYPE = 0x0040


def _entry(item: Any, tag: int, record_set: int = 0) -> Any:
    if item.number_of_record_sets <= record_set:
        return None
    return item.get_record_set(record_set).get_entry_by_type(tag)


def text(item: Any, tag: int, record_set: int = 0) -> str | None:
    """A string property, None when absent or empty."""
    entry = _entry(item, tag, record_set)
    if entry is None or entry.value_type not in _STRING_TYPES:
        return None
    try:
        value = entry.data_as_string
    except OSError:  # a string the item's codepage cannot decode
        return None
    return (value.rstrip("\x00") or None) if value else None


def integer(item: Any, tag: int, record_set: int = 0) -> int | None:
    entry = _entry(item, tag, record_set)
    if entry is None or entry.value_type not in _INTEGER_TYPES:
        return None
    return int(entry.data_as_integer)


def binary(item: Any, tag: int, record_set: int = 0) -> bytes | None:
    entry = _entry(item, tag, record_set)
    return bytes(entry.data) if entry is not None and entry.data else None


def time(item: Any, tag: int) -> datetime | None:
    """A FILETIME property as an aware UTC datetime (libpff gives naive UTC)."""
    entry = _entry(item, tag)
    if entry is None or entry.value_type != _TIME_TYPE:
        return None
    try:
        value = entry.data_as_datetime
    except (OSError, ValueError, OverflowError):
        return None
    if value is None or value.year < 1971:  # FILETIME 0 and other placeholders
        return None
    return value.replace(tzinfo=UTC)


def entryid_node(entryid: bytes | None) -> int | None:
    """The node id an EntryID names: its last 4 bytes ([MS-PST] 2.4.3.2)."""
    if entryid is None or len(entryid) < 24:
        return None
    return int.from_bytes(entryid[20:24], "little")


def multi_entryid_nodes(item: Any, tag: int) -> list[int | None]:
    """The node ids of a PtypMultipleBinary of EntryIDs (count, offsets, then the values)."""
    data = binary(item, tag)
    if data is None or len(data) < 4:
        return []
    count = int.from_bytes(data[:4], "little")
    if count > 64 or len(data) < 4 + 4 * count:
        return []
    offsets = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "little") for i in range(count)]
    ends = [*offsets[1:], len(data)]
    return [entryid_node(data[start:end]) for start, end in zip(offsets, ends, strict=True)]


# Windows code page -> Python codec, for HTML bodies stored as bytes (PR_INTERNET_CPID)
CODEPAGES = {
    65001: "utf-8", 20127: "us-ascii", 1200: "utf-16-le", 1252: "windows-1252",
    1250: "windows-1250", 1251: "windows-1251", 1253: "windows-1253", 1254: "windows-1254",
    1255: "windows-1255", 1256: "windows-1256", 1257: "windows-1257", 1258: "windows-1258",
    874: "cp874", 932: "shift_jis", 936: "gbk", 949: "euc-kr", 950: "big5", 20866: "koi8-r",
    21866: "koi8-u", 50220: "iso-2022-jp", 50221: "iso-2022-jp", 50222: "iso-2022-jp",
    51932: "euc-jp", 51949: "euc-kr", 52936: "hz-gb-2312", 54936: "gb18030",
    **{28590 + n: f"iso-8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 15)},
}


def charset(codepage: int | None) -> str | None:
    """The MIME charset name of a Windows code page, None if unknown."""
    return CODEPAGES.get(codepage) if codepage is not None else None
