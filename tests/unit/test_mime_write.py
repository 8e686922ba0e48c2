"""MIME written by fixed rules (the PST rebuild's writer): what Python's email package reads
back from it, and that every line stays CRLF-terminated and within RFC 5322's limits."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from migrator.sources.files import mime_write as mw


def parsed(*fields: str):
    data = ("\r\n".join(fields) + "\r\n\r\n").encode("utf-8")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    return BytesParser(policy=policy.default).parsebytes(data)


@pytest.mark.parametrize("subject", [
    "plain", "Grüße aus Köln", "日本語の件名です" * 8, "x" * 1500, "word " * 60, "a\r\nb",
    "€" * 100, "",
])
def test_subjects_read_back_as_written(subject):
    message = parsed(mw.unstructured("Subject", subject))
    assert message["Subject"] == " ".join(subject.split())


@pytest.mark.parametrize("display, spec, expected", [
    (None, "a@example.org", "a@example.org"),
    ("Ann Example", "a@example.org", "Ann Example <a@example.org>"),
    ("Example, Ann", "a@example.org", '"Example, Ann" <a@example.org>'),
    ('Quote "Q" \\', "a@example.org", '"Quote \\"Q\\" \\\\" <a@example.org>'),
    ("Jürgen", "j@example.org", "=?utf-8?b?SsO8cmdlbg==?= <j@example.org>"),
    (None, "first last@example.org", '"first last"@example.org'),
])
def test_mailboxes(display, spec, expected):
    assert mw.mailbox(display, spec) == expected


def test_an_address_list_reads_back_whole():
    people = [(f"Person {n}", f"p{n}@example.org") for n in range(200)] + [("Zoë", "z@x.org")]
    message = parsed(mw.address_list("To", people))
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == people


@pytest.mark.parametrize("name", [
    "report.pdf", "a b.txt", 'quote".txt', "résumé.docx", "添付ファイル.png",
    "very long name " * 20 + ".txt", "100%.txt",
])
def test_file_names_read_back_as_written(name):
    message = parsed(mw.header_with_params("Content-Type", "application/octet-stream",
                                           [("name", name)]),
                     mw.header_with_params("Content-Disposition", "attachment",
                                           [("filename", name)]))
    assert message.get_filename() == name
    assert message["Content-Type"].params["name"] == name


@pytest.mark.parametrize("text, encoding", [
    ("short ascii\nlines\n", "7bit"),
    ("x" * 200, "quoted-printable"),  # a line too long for 7bit
    ("café\r\nno final newline", "quoted-printable"),
])
def test_text_parts_keep_the_text(text, encoding):
    part = mw.text_part("plain", text, "utf-8")
    data = mw.render(part)
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert message["Content-Transfer-Encoding"] == encoding
    expected = text.replace("\r\n", "\n").rstrip("\n") + "\n"
    assert message.get_content().replace("\r\n", "\n") == expected


def test_a_multipart_renders_its_children_between_delimiters():
    tree = mw.Multipart("mixed", "=_b", [mw.text_part("plain", "hi", "utf-8"),
                                         mw.binary_part("image/png", b"\x00\xff" * 100)])
    message = BytesParser(policy=policy.default).parsebytes(b"MIME-Version: 1.0\r\n"
                                                            + mw.render(tree))
    assert message.defects == []
    parts = list(message.iter_parts())
    assert parts[0].get_content().strip() == "hi"
    assert parts[1].get_content() == b"\x00\xff" * 100
