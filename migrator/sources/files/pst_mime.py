"""An RFC 5322 message rebuilt from what a PST keeps: headers, bodies and attachments.

A PST stores MAPI properties, not the message as received. The original header block survives
in PR_TRANSPORT_MESSAGE_HEADERS for received mail; the body is rebuilt here as a new MIME tree
(text and HTML as multipart/alternative, inline images in multipart/related, attachments in
multipart/mixed), so the MIME headers of the original no longer describe it and are dropped.
The result is deterministic: boundaries come from the message's key, never from a random
source, so the same PST gives the same bytes (and the same SHA-256) on every run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import format_datetime

POLICY = email_policy.SMTP.clone(cte_type="7bit", max_line_length=78)
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
    head = [*kept, *_property_fields(parts, present, full=not kept)]
    head.append("MIME-Version: 1.0")
    body = _flatten(_body_tree(parts))
    return ("\r\n".join(head) + "\r\n").encode("utf-8") + body


def _property_fields(parts: MessageParts, present: set[str], *, full: bool) -> Iterator[str]:
    """Fields built from properties: all of them without transport headers (drafts, sent
    mail), otherwise only those the transport headers lack."""
    message = EmailMessage(policy=POLICY)
    if parts.sender is not None:
        message["From"] = _address(parts.sender)
    if full:
        for name, people in (("To", parts.to), ("Cc", parts.cc), ("Bcc", parts.bcc)):
            if people:
                message[name] = [_address(p) for p in people]
    if parts.subject is not None:
        message["Subject"] = parts.subject
    if parts.date is not None:
        message["Date"] = format_datetime(parts.date)
    for name, value in (("Message-ID", parts.message_id), ("In-Reply-To", parts.in_reply_to),
                        ("References", parts.references)):
        if value and (full or name == "Message-ID"):
            message[name] = value
    for name in message:
        if name.lower() not in present:
            yield POLICY.fold(name, message[name]).rstrip("\r\n")


def _address(person: Person) -> Address:
    address = person.address or UNKNOWN_ADDRESS
    username, _, domain = address.rpartition("@")
    if not username or not domain or not address.isascii():
        username, domain = UNKNOWN_ADDRESS.split("@")
    return Address(display_name=person.name or "", username=username, domain=domain)


class _Boundaries:
    """Boundaries drawn from the message key: deterministic, and unlike anything in base64
    or quoted-printable text ("=_" cannot occur in either)."""

    def __init__(self, key: str) -> None:
        self._seed = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"=_pst_{self._seed}_{self._count}"


def _body_tree(parts: MessageParts) -> MIMEPart:
    boundaries = _Boundaries(parts.key)
    texts = list(_text_parts(parts))
    body = texts[0] if len(texts) == 1 else _multipart("alternative", texts, boundaries)
    inline = [a for a in parts.attachments if _is_inline(a, parts.html)]
    if inline:
        body = _multipart("related", [body, *map(_attachment_part, inline)], boundaries)
    others = [a for a in parts.attachments if a not in inline]
    rtf = _rtf_attachment(parts)
    if rtf is not None:
        others.insert(0, rtf)
    if others:
        body = _multipart("mixed", [body, *map(_attachment_part, others)], boundaries)
    return body


def _text_parts(parts: MessageParts) -> Iterator[MIMEPart]:
    if parts.plain is not None or parts.html is None:
        part = MIMEPart(policy=POLICY)
        part.set_content(parts.plain or "", subtype="plain", charset="utf-8")
        yield part
    if parts.html is not None:
        yield _html_part(parts.html, parts.html_charset)


def _html_part(html: bytes, charset: str | None) -> MIMEPart:
    """HTML as text in its own charset; bytes that charset cannot decode go as they are,
    base64, and the HTML's own <meta> names their charset."""
    part = MIMEPart(policy=POLICY)
    try:
        text = html.decode(charset) if charset else None
    except (UnicodeDecodeError, LookupError):
        text = None
    if text is not None and charset is not None:
        part.set_content(text, subtype="html", charset=charset)
    else:
        part.set_content(html, "text", "html", cte="base64")
    return part


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


def _attachment_part(attachment: Attachment) -> MIMEPart:
    part = MIMEPart(policy=POLICY)
    if attachment.message is not None:
        embedded = BytesParser(policy=POLICY).parsebytes(attachment.message)
        part.set_content(embedded)  # message/rfc822
        if attachment.filename:
            part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
        return part
    maintype, subtype = _content_type(attachment.content_type)
    cid = attachment.content_id
    part.set_content(attachment.data, maintype, subtype, cte="base64",
                     disposition="inline" if cid else "attachment",
                     filename=attachment.filename or None,
                     cid=f"<{cid.strip('<>')}>" if cid else None)
    return part


def _content_type(content_type: str | None) -> tuple[str, str]:
    maintype, _, subtype = (content_type or "").strip().lower().partition("/")
    subtype = subtype.split(";")[0].strip()
    token = re.compile(r"^[a-z0-9!#$&^_.+-]+$")
    if not token.match(maintype) or not token.match(subtype) or maintype == "multipart":
        return "application", "octet-stream"
    return maintype, subtype


def _multipart(subtype: str, children: Iterable[MIMEPart], boundaries: _Boundaries) -> MIMEPart:
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f'multipart/{subtype}; boundary="{boundaries.next()}"'
    for child in children:
        part.attach(child)
    return part


def _flatten(part: MIMEPart) -> bytes:
    return part.as_bytes(policy=POLICY)
