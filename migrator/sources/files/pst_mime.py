"""An RFC 5322 message rebuilt from what a PST keeps: headers, bodies and attachments.

A PST stores MAPI properties, not the message as received. The original header block survives
in PR_TRANSPORT_MESSAGE_HEADERS for received mail; the body is rebuilt here as a new MIME tree
(text and HTML as multipart/alternative, inline images in multipart/related, attachments in
multipart/mixed), so the MIME headers of the original no longer describe it and are dropped.
The result is deterministic: boundaries come from the message's key, never from a random
source, and the MIME is written by fixed rules (mime_write), so the same PST gives the same
bytes (and the same SHA-256) on every run.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime

from migrator.sources.files import mime_write as mw

# header fields of the original that describe the original body, not the rebuilt one
STALE_FIELDS = frozenset({"content-type", "content-transfer-encoding", "mime-version",
                          "content-disposition", "content-id"})
UNKNOWN_ADDRESS = "unknown@unknown.invalid"  # RFC 2606: a sender Outlook kept no SMTP address of
_FIELD = re.compile(r"^[!-9;-~]+:")  # RFC 5322 section 3.6.8: printable ASCII but ":", then ":"


@dataclass(frozen=True)
class Person:
    """A sender or recipient as the PST names them; `address` None when it has no SMTP one."""

    name: str | None
    address: str | None


@dataclass(frozen=True)
class Attachment:
    """One attachment; `message` holds an embedded message already rebuilt as bytes."""

    filename: str | None
    content_type: str | None
    content_id: str | None
    data: bytes
    message: bytes | None = None


@dataclass
class MessageParts:
    """What the PST keeps of one message, as the MIME rebuild needs it."""

    key: str
    transport_headers: str | None = None
    subject: str | None = None
    sender: Person | None = None
    to: list[Person] = field(default_factory=list)
    cc: list[Person] = field(default_factory=list)
    bcc: list[Person] = field(default_factory=list)
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    plain: str | None = None
    html: bytes | None = None
    html_charset: str | None = None
    rtf: bytes | None = None
    attachments: list[Attachment] = field(default_factory=list)


def header_fields(transport_headers: str) -> list[str]:
    """The fields of a header block, each with its folding, minus lines that are no field.

    Exchange once put "Microsoft Mail Internet Headers Version 2.0" in front of the block:
    such a line is not a header field and would end the header section, so it is dropped.
    """
    fields: list[str] = []
    for line in transport_headers.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            if fields:
                break  # the end of the header block (anything after it is not a header)
            continue
        if line[0] in " \t":
            if fields:
                fields[-1] += "\r\n" + line
        elif _FIELD.match(line):
            fields.append(line)
    return fields


def field_name(header_field: str) -> str:
    return header_field.split(":", 1)[0].strip().lower()


def build(parts: MessageParts) -> bytes:
    """The message as RFC 5322 bytes with CRLF line ends; the same parts give the same bytes."""
    kept = [f for f in header_fields(parts.transport_headers or "")
            if field_name(f) not in STALE_FIELDS]
    present = {field_name(f) for f in kept}
    built = [f for f in _property_fields(parts, full=not kept) if field_name(f) not in present]
    head = [*kept, *built, "MIME-Version: 1.0"]
    return ("\r\n".join(head) + "\r\n").encode("utf-8") + mw.render(_body_tree(parts))


def _property_fields(parts: MessageParts, *, full: bool) -> Iterator[str]:
    """Fields built from properties: all of them without transport headers (drafts, sent
    mail), otherwise only those the transport headers lack (the caller drops the others)."""
    if parts.sender is not None:
        yield mw.address_list("From", [_mailbox(parts.sender)])
    if full:
        for name, people in (("To", parts.to), ("Cc", parts.cc), ("Bcc", parts.bcc)):
            if people:
                yield mw.address_list(name, [_mailbox(p) for p in people])
    if parts.subject is not None:
        yield mw.unstructured("Subject", parts.subject)
    if parts.date is not None:
        yield "Date: " + format_datetime(parts.date)
    for name, value in (("Message-ID", parts.message_id), ("In-Reply-To", parts.in_reply_to),
                        ("References", parts.references)):
        if value and value.strip() and (full or name == "Message-ID"):
            yield mw.identifiers(name, value)


def _mailbox(person: Person) -> tuple[str | None, str]:
    address = person.address if person.address and mw.is_address(person.address) \
        else UNKNOWN_ADDRESS
    return person.name, address


class _Boundaries:
    """Boundaries drawn from the message key: deterministic, and unlike anything in base64
    or quoted-printable text ("=_" cannot occur in either)."""

    def __init__(self, key: str) -> None:
        self._seed = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"=_pst_{self._seed}_{self._count}"


def _body_tree(parts: MessageParts) -> mw.Part | mw.Multipart:
    boundaries = _Boundaries(parts.key)
    texts = list(_text_parts(parts))
    body = texts[0] if len(texts) == 1 else mw.Multipart("alternative", boundaries.next(), texts)
    inline = [a for a in parts.attachments if _is_inline(a, parts.html)]
    if inline:
        body = mw.Multipart("related", boundaries.next(),
                            [body, *map(_attachment_part, inline)])
    others = [a for a in parts.attachments if a not in inline]
    rtf = _rtf_attachment(parts)
    if rtf is not None:
        others.insert(0, rtf)
    if others:
        body = mw.Multipart("mixed", boundaries.next(), [body, *map(_attachment_part, others)])
    return body


def _text_parts(parts: MessageParts) -> Iterator[mw.Part | mw.Multipart]:
    if parts.plain is not None or parts.html is None:
        yield mw.text_part("plain", parts.plain or "", "utf-8")
    if parts.html is not None:
        yield _html_part(parts.html, parts.html_charset)


def _html_part(html: bytes, charset: str | None) -> mw.Part:
    """HTML as text in its own charset; bytes that charset cannot decode go as they are,
    base64, and the HTML's own <meta> names their charset."""
    try:
        text = html.decode(charset) if charset else None
    except (UnicodeDecodeError, LookupError):
        text = None
    if text is not None and charset is not None:
        return mw.text_part("html", text, charset)
    return mw.binary_part("text/html", html)


def _rtf_attachment(parts: MessageParts) -> Attachment | None:
    """An RTF body kept as an attachment, unless HTML says the same or it only wraps the
    plain text (RTF written \\fromtext)."""
    if parts.rtf is None or parts.html is not None or b"\\fromtext" in parts.rtf[:400]:
        return None
    return Attachment("rtf-body.rtf", "application/rtf", None, parts.rtf)


def _is_inline(attachment: Attachment, html: bytes | None) -> bool:
    cid = attachment.content_id
    return bool(cid and html and attachment.message is None
                and ("cid:" + cid.strip("<>")).encode("utf-8", "replace") in html)


def _attachment_part(attachment: Attachment) -> mw.Part:
    name = attachment.filename
    disposition = "inline" if attachment.content_id else "attachment"
    disposition_field = mw.header_with_params("Content-Disposition", disposition,
                                              [("filename", name)] if name else [])
    if attachment.message is not None:
        # the embedded message as rebuilt: CRLF and 7-bit clean but for header text
        fields = ["Content-Type: message/rfc822", disposition_field]
        if not attachment.message.isascii():  # header text kept as received (RFC 6532)
            fields.append("Content-Transfer-Encoding: 8bit")
        return mw.Part(fields, attachment.message)
    extra = [disposition_field]
    cid = attachment.content_id
    if cid:
        extra.append(f"Content-ID: <{cid.strip('<> ')}>")
    return mw.binary_part(content_type(attachment), attachment.data,
                          [("name", name)] if name else [], extra)


_TYPES = mimetypes.MimeTypes()  # Python's built-in table only, never the machine's own files
_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


def content_type(attachment: Attachment) -> str:
    """The MIME tag the PST keeps, else one guessed from the file name, else octet-stream."""
    tag = (attachment.content_type or "").split(";")[0].strip().lower()
    if not tag and attachment.filename:
        tag = _TYPES.guess_type(attachment.filename, strict=False)[0] or ""
    if not _TYPE.match(tag) or tag.startswith(("multipart/", "message/")):
        return "application/octet-stream"
    return tag
