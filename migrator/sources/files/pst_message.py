"""What the MIME rebuild needs of one PST e-mail, read from libpff: headers, people, bodies,
attachments."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from migrator.sources.files import pst_props as props
from migrator.sources.files.pst_embedded import embedded_message
from migrator.sources.files.pst_mime import Attachment, MessageParts, Person, build
from migrator.sources.files.pst_rtf import html_from_rtf

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # messages inside messages inside ... (a loop in a damaged file ends here)
RECIPIENT_FIELDS = {1: "to", 2: "cc", 3: "bcc"}  # PidTagRecipientType
REFERENCE_METHODS = (2, 3, 4, 7)  # by reference, by ref resolve, by ref only, by web reference


def message_parts(item: Any, key: str, depth: int = 0) -> MessageParts:
    """Everything of `item` (a pypff message) the rebuilt message carries."""
    parts = MessageParts(
        key=key,
        transport_headers=_transport_headers(item),
        subject=subject(item),
        sender=_sender(item),
        date=(props.time(item, props.CLIENT_SUBMIT_TIME) or props.time(item, props.DELIVERY_TIME)
              or props.time(item, props.CREATION_TIME)),
        message_id=props.text(item, props.INTERNET_MESSAGE_ID),
        in_reply_to=props.text(item, props.IN_REPLY_TO),
        references=props.text(item, props.REFERENCES),
        plain=_plain(item),
        html=_body(item, "html_body"),
        html_charset=props.charset(props.integer(item, props.INTERNET_CPID)),
        rtf=_body(item, "rtf_body"),
    )
    if parts.html is None and parts.rtf is not None:
        encapsulated = html_from_rtf(parts.rtf)  # HTML kept only as RTF (\fromhtml1)
        if encapsulated is not None:
            parts.html, parts.html_charset = encapsulated
    for kind, person in _recipients(item):
        getattr(parts, kind).append(person)
    parts.attachments = _attachments(item, key, depth)
    return parts


def subject(item: Any) -> str | None:
    """PR_SUBJECT without its prefix marker: "\\x01" and a length char may lead the text."""
    value = props.text(item, props.SUBJECT)
    if value and value[0] == "\x01":
        value = value[2:]
    return value


def _transport_headers(item: Any) -> str | None:
    try:
        headers = item.transport_headers
    except OSError:
        return None
    return (headers.rstrip("\x00") or None) if headers else None


def _plain(item: Any) -> str | None:
    """PR_BODY as libpff converts it to UTF-8; if its code page defeats libpff, the raw
    property (UTF-16 for a Unicode PST, else Windows-1252 as the likeliest)."""
    try:
        data = _strip_nul(item.plain_text_body)
    except OSError as exc:
        log.warning("PST message %s: plain text body read raw (%s)", item.identifier,
                    str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        return _raw_text(item, props.BODY)
    return data.decode("utf-8", "replace") if data is not None else None


def _raw_text(item: Any, tag: int) -> str | None:
    entry = item.get_record_set(0).get_entry_by_type(tag) if item.number_of_record_sets else None
    if entry is None or not entry.data:
        return None
    codec = "utf-16-le" if entry.value_type == 0x001F else "windows-1252"
    return bytes(entry.data).decode(codec, "replace").rstrip("\x00") or None


def _body(item: Any, name: str) -> bytes | None:
    """The HTML or RTF body, None (said once) if libpff cannot read it: the text remains."""
    try:
        return _strip_nul(getattr(item, name))
    except OSError:
        log.warning("PST message %s: its %s cannot be read, not kept", item.identifier,
                    name.replace("_", " "))
        return None


def _strip_nul(data: bytes | None) -> bytes | None:
    return data.rstrip(b"\x00") if data else None


def _sender(item: Any) -> Person | None:
    name = (props.text(item, props.SENT_REPRESENTING_NAME)
            or props.text(item, props.SENDER_NAME))
    candidates = (props.text(item, props.SENT_REPRESENTING_SMTP),
                  props.text(item, props.SENDER_SMTP),
                  props.text(item, props.SENT_REPRESENTING_EMAIL),
                  props.text(item, props.SENDER_EMAIL))
    address = next((c for c in candidates if c and "@" in c), None)
    return Person(name, address) if name or address else None


def _recipients(item: Any) -> list[tuple[str, Person]]:
    recipients = item.recipients
    if recipients is None:
        return []
    found: list[tuple[str, Person]] = []
    for index in range(recipients.number_of_record_sets):
        kind = RECIPIENT_FIELDS.get(props.integer(recipients, props.RECIPIENT_TYPE, index) or 1)
        if kind is None:
            continue
        smtp = props.text(recipients, props.SMTP_ADDRESS, index)
        email = props.text(recipients, props.EMAIL_ADDRESS, index)
        address = next((c for c in (smtp, email) if c and "@" in c), None)
        name = props.text(recipients, props.DISPLAY_NAME, index)
        if name and address and name.strip("'\" ") == address:
            name = None  # Outlook's display name of a bare address is the address, quoted
        found.append((kind, Person(name, address)))
    return found


def _embedded(attachment: Any, key: str, depth: int) -> bytes | None:
    """An embedded message rebuilt like any other (its own attachments too, to a depth)."""
    if depth >= MAX_DEPTH:
        return None
    item = embedded_message(importlib.import_module("pypff"), attachment)
    return build(message_parts(item, key, depth + 1)) if item is not None else None


def _attachments(item: Any, key: str, depth: int) -> list[Attachment]:
    found: list[Attachment] = []
    for index in range(item.number_of_attachments):
        attachment = item.get_attachment(index)
        method = props.integer(attachment, props.ATTACH_METHOD)
        filename = (props.text(attachment, props.ATTACH_LONG_FILENAME)
                    or props.text(attachment, props.ATTACH_FILENAME)
                    or props.text(attachment, props.DISPLAY_NAME))
        if method in REFERENCE_METHODS:
            log.warning("PST message %s: attachment %r is a link to a file outside the PST,"
                        " not kept", key, filename)
            continue
        if method == props.ATTACH_EMBEDDED_MSG:
            embedded = _embedded(attachment, f"{key}.{index}", depth)
            if embedded is None:
                log.warning("PST message %s: embedded message %r not kept (libpff gives no"
                            " access to it here)", key, filename)
            else:
                found.append(Attachment(filename, None, None, b"", message=embedded))
            continue
        size = attachment.size or 0
        data = bytes(attachment.read_buffer(size)) if size else b""
        found.append(Attachment(filename, props.text(attachment, props.ATTACH_MIME_TAG),
                                props.text(attachment, props.ATTACH_CONTENT_ID), data))
    return found
