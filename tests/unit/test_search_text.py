"""The words the search index gets from a raw message: decoded, de-tagged, capped, and never
an exception, whatever the message."""

from __future__ import annotations

import base64
import quopri

import pytest

from migrator.archive.search_text import MAX_TEXT, decode_header_value, extract, html_text
from tests.world.corpus import generate


def mail(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body


def test_base64_utf8_body_is_decoded() -> None:
    body = base64.encodebytes("Grüße aus München: der Zaunkönig singt".encode())
    found = extract(mail("From: a@example.org\nContent-Type: text/plain; charset=utf-8\n"
                         "Content-Transfer-Encoding: base64\n", body))
    assert "Zaunkönig" in found.body and "München" in found.body
    assert "R3L" not in found.body  # not the base64 itself


def test_rfc2047_headers_are_decoded_in_any_charset() -> None:
    found = extract(mail("From: =?iso-8859-1?q?J=FCrgen_M=FCller?= <j@example.de>\n"
                         "To: =?UTF-8?B?w4lsb2RpZQ==?= <e@example.fr>\n"
                         "Subject: =?UTF-8?B?UmVpc2Vrb3N0ZW4gTcO8bmNoZW4=?= und\n"
                         " =?koi8-r?b?8NLJ18XU?=\n", b"hi\r\n"))
    assert found.sender == "Jürgen Müller <j@example.de>"
    assert found.recipients == "Élodie <e@example.fr>"
    assert found.subject == "Reisekosten München und Привет"


def test_unknown_charsets_and_raw_8bit_headers_do_not_raise() -> None:
    assert decode_header_value("=?x-klingon?q?caf=E9?= bar") == "caf\ufffd bar"
    raw = "Subject: Grüße ohne Kodierung\nContent-Type: text/plain; charset=x-unknown\n"
    found = extract(raw.encode("utf-8") + b"\ncaf\xc3\xa9 \xff\r\n")
    assert found.subject == "Grüße ohne Kodierung"
    assert found.body.startswith("café \ufffd")
    latin = extract("Subject: Grüße\n\nx".encode("latin-1"))
    assert latin.subject == "Grüße"


def test_quoted_printable_latin1() -> None:
    body = quopri.encodestring("Ärger mit dem Zähler".encode("latin-1"))
    found = extract(mail("Content-Type: text/plain; charset=\"ISO-8859-1\"\n"
                         "Content-Transfer-Encoding: quoted-printable\n", body))
    assert "Ärger mit dem Zähler" in found.body


def test_html_gives_its_text_not_its_tags_scripts_or_styles() -> None:
    markup = (b"<html><head><title>t</title><style>.zebra{color:red}</style></head><body>"
              b"<p>Hello&nbsp;<b>wonder</b>ful</p><div class=\"hidden\">world</div>"
              b"<script>var secretword = 1;</script></body></html>")
    found = extract(mail("Content-Type: text/html; charset=utf-8\n", markup))
    words = found.body.split()
    assert {"world", "Hello", "wonderful"} <= set(words)
    assert not {"zebra", "hidden", "secretword", "div", "class", "<p>"} & set(words)
    assert html_text("<p>unclosed <b").split()[0] == "unclosed"


def test_multipart_alternative_takes_plain_and_attachments_are_skipped() -> None:
    attachment = base64.encodebytes(b"PNGDATA-quokka" * 100)
    body = (b"preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n"
            b"\r\n--inner\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--inner\r\n"
            b"Content-Type: text/html\r\n\r\n<p>html words</p>\r\n--inner--\r\n--outer\r\n"
            b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + attachment + b"\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n"
            b"From: inner@example.org\r\nSubject: forwarded one\r\n\r\nnested text\r\n"
            b"--outer--\r\nepilogue\r\n")
    found = extract(mail("Content-Type: multipart/mixed; boundary=\"outer\"\n", body))
    assert "plain words" in found.body and "nested text" in found.body
    assert "forwarded one" in found.body
    assert "html words" not in found.body and "quokka" not in found.body
    assert "preamble" not in found.body and "epilogue" not in found.body


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage without any header",
    b"Subject: no body separator at all",
    b"\r\n\r\nbody without headers",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
    b"\r\nnever closed",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!not*base64=",
    b"Content-Type: text/plain; charset=\"\r\n\r\nempty charset",
    b"Date: Feb 31 2019 99:99\r\nSubject: =?utf-8?q?broken=ZZ?=\r\n\r\nx",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\n" * 5000,
])
def test_malformed_messages_never_raise(raw: bytes) -> None:
    found = extract(raw)
    assert isinstance(found.body, str) and isinstance(found.subject, str)


def test_unclosed_part_is_read_to_the_end() -> None:
    found = extract(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                    b"Content-Type: text/plain\r\n\r\nnever closed")
    assert found.body.strip() == "never closed"


def test_every_corpus_message_gives_its_subject_and_no_error() -> None:
    corpus = generate(seed=7, count=60, max_size=20_000)
    for item in corpus:
        found = extract(item.raw)
        assert "=?" not in found.subject, (item.traits, found.subject)
        if "rfc2047" in item.traits:
            assert not found.subject.isascii(), found.subject
    assert any("stdlib" in item.traits for item in corpus)  # CPython's odd messages too


def test_date_in_utc_and_text_capped() -> None:
    found = extract(mail("Date: Wed, 1 May 2019 01:30:00 +0200\n", b"word " * 100_000))
    assert found.date == "2019-04-30T23:30:00+00:00"
    assert len(found.body) == MAX_TEXT
    assert extract(mail("Date: not a date\n", b"x")).date is None


def test_a_big_body_is_indexed_by_its_first_part() -> None:
    body = base64.encodebytes(("Zaunkönig " + "filler " * 200_000 + "kingfisher").encode())
    found = extract(mail("Content-Type: text/plain; charset=utf-8\n"
                         "Content-Transfer-Encoding: base64\n", body))
    assert found.body.startswith("Zaunkönig filler")
    assert len(found.body) == MAX_TEXT and "kingfisher" not in found.body  # past the cap
