"""The MIME rebuild of a PST message, from its parts (no PST needed): header block handling,
fields built from properties, the MIME tree, determinism and CRLF."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from migrator.sources.files.pst_mime import (
    Attachment,
    MessageParts,
    Person,
    build,
    header_fields,
)
from migrator.sources.files.pst_rtf import html_from_rtf

RECEIVED = (
    "Microsoft Mail Internet Headers Version 2.0\r\n"
    "Received: from a.example (a.example [192.0.2.1])\r\n"
    "\tby b.example; Mon, 24 Feb 2014 21:14:37 +0000\r\n"
    "From: Ann <ann@example.org>\r\n"
    "To: bob@example.org\r\n"
    "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
    "Date: Mon, 24 Feb 2014 21:14:34 +0000\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"orig\"\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "X-Keep: yes\r\n"
    "\r\n"
)


def parse(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


@pytest.mark.parametrize("block, expected", [
    ("A: 1\r\nB: 2\r\n\r\n", ["A: 1", "B: 2"]),
    ("A: 1\r\n  folded\r\nB: 2", ["A: 1\r\n  folded", "B: 2"]),
    ("A: 1\nB: 2\n", ["A: 1", "B: 2"]),  # bare LF as some PSTs keep it
    ("Not a field line\r\nA: 1", ["A: 1"]),
    ("A: 1\r\n\r\nbody: text", ["A: 1"]),  # the block ends at the first empty line
    ("\r\nA: 1", ["A: 1"]),  # leading empty lines are no end
    ("Bad name here: 1\r\nA: 1", ["A: 1"]),
])
def test_header_fields(block, expected):
    assert header_fields(block) == expected


def test_transport_headers_are_kept_and_stale_mime_fields_dropped():
    data = build(MessageParts(key="1", transport_headers=RECEIVED, plain="hello\r\n",
                              subject="ignored", sender=Person("X", "x@example.org")))
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("Received: from a.example (a.example [192.0.2.1])\r\n\tby b.ex")
    assert "Microsoft Mail" not in head and "boundary=\"orig\"" not in head
    assert head.count("MIME-Version") == 1 and "X-Keep: yes" in head
    assert "ignored" not in head and "x@example.org" not in head  # present fields win
    message = parse(data)
    assert message["Subject"] == "café" and message.get_content().replace("\r\n", "\n") == "hello\n"


def test_fields_missing_from_transport_headers_come_from_properties():
    data = build(MessageParts(key="1", transport_headers="Received: x\r\n", plain="b",
                              subject="S", sender=Person("Ann", "ann@example.org"),
                              date=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
                              message_id="<id@x>", to=[Person(None, "bob@example.org")]))
    message = parse(data)
    assert message["Subject"] == "S" and message["From"] == "Ann <ann@example.org>"
    assert message["Date"] == "Thu, 02 Jan 2020 03:04:05 +0000"
    assert message["Message-ID"] == "<id@x>"
    assert message["To"] is None  # recipients as delivered are in the transport headers


def test_without_transport_headers_every_field_comes_from_properties():
    parts = MessageParts(
        key="7", subject="Grüße", sender=Person("Ann Example", None),
        to=[Person("Bob", "bob@example.org")], cc=[Person(None, "cc@example.org")],
        bcc=[Person("Hidden", "bcc@example.org")],
        date=datetime(2021, 7, 27, 22, 19, 50, tzinfo=UTC), message_id="<a@b>",
        in_reply_to="<p@b>", references="<r@b> <p@b>", plain="text")
    message = parse(build(parts))
    assert message["Subject"] == "Grüße"
    assert message["From"] == "Ann Example <unknown@unknown.invalid>"  # no SMTP address kept
    assert message["To"] == "Bob <bob@example.org>" and message["Cc"] == "cc@example.org"
    assert message["Bcc"] == "Hidden <bcc@example.org>"
    assert message["In-Reply-To"] == "<p@b>" and message["References"] == "<r@b> <p@b>"


def test_bodies_inline_images_and_attachments_make_one_mime_tree():
    html = b'<html><body><img src="cid:img1@x">caf\xe9</body></html>'
    parts = MessageParts(
        key="9", plain="café", html=html, html_charset="iso-8859-1",
        attachments=[Attachment("a.bin", None, None, bytes(range(256))),
                     Attachment("i.png", "image/png", "img1@x", b"\x89PNG\r\n"),
                     Attachment("name.pdf", "Application/PDF; x=y", None, b"%PDF")])
    message = parse(build(parts))
    tree = [(p.get_content_type(), p.get_filename()) for p in message.walk()]
    assert tree == [("multipart/mixed", None), ("multipart/related", None),
                    ("multipart/alternative", None), ("text/plain", None),
                    ("text/html", None), ("image/png", "i.png"),
                    ("application/octet-stream", "a.bin"), ("application/pdf", "name.pdf")]
    parts_by_name = {p.get_filename(): p for p in message.walk() if p.get_filename()}
    assert parts_by_name["a.bin"].get_content() == bytes(range(256))
    assert parts_by_name["i.png"]["Content-ID"] == "<img1@x>"
    assert message.get_body(("html",)).get_content().rstrip() == html.decode("latin-1")


@pytest.mark.parametrize("rtf, attached", [
    (b"{\\rtf1\\ansi real rtf}", True),
    (b"{\\rtf1\\ansi\\fromtext plain wrapped}", False),  # says nothing the plain text lacks
])
def test_an_rtf_only_body_is_kept_as_an_attachment_unless_it_wraps_the_text(rtf, attached):
    message = parse(build(MessageParts(key="1", plain="t", rtf=rtf)))
    names = [p.get_filename() for p in message.walk() if p.get_filename()]
    assert names == (["rtf-body.rtf"] if attached else [])


def test_the_same_parts_give_the_same_bytes_with_crlf_only():
    def parts() -> MessageParts:
        return MessageParts(key="k", transport_headers=RECEIVED, plain="a\nb\r\nc",
                            html=b"<p>x</p>\n", html_charset="utf-8",
                            attachments=[Attachment("f", None, None, b"\n\r\n")])
    first, second = build(parts()), build(parts())
    assert first == second
    assert re.search(rb"(?<!\r)\n", first) is None and re.search(rb"\r(?!\n)", first) is None
    other = build(MessageParts(key="other", plain="a"))
    assert re.findall(rb"boundary=\"([^\"]+)\"", first)[0] not in other


def test_an_embedded_message_is_a_message_rfc822_part():
    inner = build(MessageParts(key="in", subject="Inner", plain="inside"))
    message = parse(build(MessageParts(key="out", plain="outer", attachments=[
        Attachment("Inner", None, None, b"", message=inner)])))
    (part,) = [p for p in message.walk() if p.get_content_type() == "message/rfc822"]
    assert part.get_content()["Subject"] == "Inner"


def test_html_encapsulated_in_rtf_is_read_back():
    rtf = (b"{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0{\\fonttbl{\\f0 Arial;}}"
           b"{\\*\\htmltag19 <html>}{\\*\\htmltag34 <body>}\\htmlrtf {\\b rtf only}\\htmlrtf0 "
           b"caf\\'e9 \\{x\\} \\u8364?{\\*\\htmltag64 <br>}\\par{\\*\\htmltag27 </body></html>}}")
    html, charset = html_from_rtf(rtf)
    assert charset == "windows-1252"
    assert html.decode(charset) == "<html><body>café {x} €<br>\r\n</body></html>"
    assert html_from_rtf(b"{\\rtf1\\ansi plain rtf}") is None
