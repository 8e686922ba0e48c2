"""headers.py reads fields with one regex search; it must agree with the plain line-by-line
reading (kept here as the reference) on every kind of odd header block."""

from __future__ import annotations

import re

import pytest

from migrator.headers import header_block, header_value, message_id
from tests.world.corpus import generate


def reference_value(data: bytes, name: str) -> str | None:
    """The obvious implementation: split the header block into lines, find, unfold."""
    lines = re.split(rb"\r?\n", header_block(data))
    wanted = name.lower().encode("ascii") + b":"
    for index, line in enumerate(lines):
        if line[: len(wanted)].lower() != wanted:
            continue
        value = line[len(wanted):]
        for follower in lines[index + 1:]:
            if follower[:1] not in (b" ", b"\t"):
                break
            value += b" " + follower.strip()
        return value.strip().decode("utf-8", "replace")
    return None


ODD = [
    b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody",
    b"message-id:<a@b>\n\nbody",
    b"MESSAGE-ID:   \r\n\t<folded@x>\r\n  more\r\nX: y\r\n\r\n",
    b"Subject: hi\r\nX-Message-ID: <not@this>\r\nMessage-ID: <this@one>\r\n\r\n",
    b"Subject: hi\r\n\r\nMessage-ID: <in@body>\r\n",
    b"Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n",
    b"Message-ID: a\r\r\n b\r\n\r\n",
    b"Message-ID: <\xff\xfe@bad-utf8>\n\n",
    b"Message-ID:",
    b"",
    b"no headers at all",
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\n continued\r\n\tand more\r\nDate: now\r\n\r\n",
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nFrom: a@b\nSubject:\n\n",
    b"  Message-ID: <indented@x>\r\n\r\n",
    b"Message-IDs: <other@x>\r\nMessage-ID : <space@x>\r\n\r\n",
]


@pytest.mark.parametrize("data", ODD)
@pytest.mark.parametrize("name", ["Message-ID", "Subject", "Date", "From", "X-Message-ID"])
def test_agrees_with_line_by_line_reading(data: bytes, name: str) -> None:
    assert header_value(data, name) == reference_value(data, name)


def test_agrees_on_the_whole_test_corpus() -> None:
    for item in generate(seed=7, count=400, max_size=50_000):
        for name in ("Message-ID", "Subject", "Date", "From", "To"):
            assert header_value(item.raw, name) == reference_value(item.raw, name), name


def test_message_id_keeps_angle_brackets_and_ignores_the_body() -> None:
    assert message_id(b"Message-ID: junk <id@host> trailing\r\n\r\n") == "<id@host>"
    assert message_id(b"Message-ID: bare-id extra\r\n\r\n") == "bare-id"
    assert message_id(b"Subject: x\r\n\r\nMessage-ID: <in@body>\r\n") is None
    assert message_id(b"Message-ID:   \r\n\r\n") is None
