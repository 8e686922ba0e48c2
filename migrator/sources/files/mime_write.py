"""MIME written by hand, byte for byte: header fields, parameters, encodings, multiparts.

The PST rebuild must give the same bytes for the same PST on every run, on every machine and
after every upgrade (a re-import dedupes by SHA-256). Python's email package folds, quotes and
picks transfer encodings by heuristics that have changed between Python releases, so the
rebuild writes its MIME here with fixed rules instead: 7bit when a text is ASCII with short
lines, else quoted-printable for text and base64 for everything else; RFC 2047 encoded words
for non-ASCII header text; RFC 2231 for non-ASCII file names; CRLF everywhere.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CRLF = b"\r\n"
MAX_LINE = 998  # RFC 5322 section 2.1.1
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 2045 token
_ATOM_TEXT = re.compile(r"^[!#$%&'*+/=?^_`{|}~0-9A-Za-z -]*$")  # atext and spaces: a phrase
_DOT_ATOM = re.compile(r"^[!#$%&'*+/=?^_`{|}~0-9A-Za-z-]+(\.[!#$%&'*+/=?^_`{|}~0-9A-Za-z-]+)*$")
_WORD_BYTES = 45  # UTF-8 bytes per encoded word: 60 base64 characters, 72 with its frame


@dataclass
class Part:
    """A leaf part: header fields (each already one folded field) and its encoded body."""

    fields: list[str]
    body: bytes


@dataclass
class Multipart:
    subtype: str
    boundary: str
    children: list[Part | Multipart] = field(default_factory=list)


def render(part: Part | Multipart) -> bytes:
    """A part's header fields, the empty line, its body."""
    if isinstance(part, Part):
        return _lines(part.fields) + CRLF + part.body
    head = _lines([f'Content-Type: multipart/{part.subtype};\r\n boundary="{part.boundary}"'])
    delimiter = b"--" + part.boundary.encode("ascii")
    body = b"".join(delimiter + CRLF + render(child) + CRLF for child in part.children)
    return head + CRLF + body + delimiter + b"--" + CRLF


def _lines(fields: Iterable[str]) -> bytes:
    return b"".join(f.encode("utf-8") + CRLF for f in fields)


def text_part(subtype: str, text: str, charset: str) -> Part:
    """Text with CRLF line ends: 7bit if it is ASCII with lines short enough, else
    quoted-printable in `charset` (characters it cannot hold as numeric references in HTML,
    as "?" elsewhere)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    normal = "\n".join(lines) + "\n"
    fallback = "xmlcharrefreplace" if subtype == "html" else "replace"
    data = normal.encode(charset, fallback)
    content_type = f"Content-Type: text/{subtype}; charset=\"{charset}\""
    if data.isascii() and all(len(line) <= 76 for line in lines):
        return Part([content_type, "Content-Transfer-Encoding: 7bit"],
                    data.replace(b"\n", CRLF))
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    return Part([content_type, "Content-Transfer-Encoding: quoted-printable"],
                encoded.replace(b"\n", CRLF))


def binary_part(content_type: str, data: bytes, params: Sequence[tuple[str, str]] = (),
                extra: Sequence[str] = ()) -> Part:
    """Bytes as base64 in lines of 76 characters."""
    encoded = base64.encodebytes(data).replace(b"\n", CRLF)
    return Part([header_with_params("Content-Type", content_type, params),
                 "Content-Transfer-Encoding: base64", *extra], encoded)


def header_with_params(name: str, value: str, params: Sequence[tuple[str, str]]) -> str:
    """`name: value; p="v"`, each parameter on a line of its own; RFC 2231 (UTF-8, split in
    numbered sections) for a value that is not printable ASCII or too long."""
    pieces = [f"{name}: {value}"]
    for key, raw in params:
        if raw.isascii() and raw.isprintable() and len(raw) <= 60:
            pieces.append(f"{key}={_quoted(raw)}" if not _TOKEN.match(raw) else f"{key}={raw}")
            continue
        encoded = urllib.parse.quote(raw, safe="")
        chunks = _split_percent(encoded, 60)
        if len(chunks) == 1:
            pieces.append(f"{key}*=utf-8''{chunks[0]}")
        else:
            pieces.extend(f"{key}*{i}*={'utf-8' + chr(39) * 2 if i == 0 else ''}{chunk}"
                          for i, chunk in enumerate(chunks))
    return ";\r\n ".join(pieces)


def _split_percent(encoded: str, size: int) -> list[str]:
    """Chunks of at most `size` characters that never cut a %XX escape."""
    chunks: list[str] = []
    while encoded:
        cut = min(size, len(encoded))
        while cut < len(encoded) and "%" in encoded[max(cut - 2, 0):cut]:
            cut -= 1
        chunks.append(encoded[:cut])
        encoded = encoded[cut:]
    return chunks


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unstructured(name: str, text: str) -> str:
    """An unstructured field (Subject): ASCII folded at spaces, else RFC 2047 encoded words."""
    text = " ".join(text.replace("\r", " ").replace("\n", " ").split())
    if text.isascii() and text.isprintable() and all(len(w) < 900 for w in text.split(" ")):
        return _fold_words(f"{name}: {text}".split(" "))
    return f"{name}: " + "\r\n ".join(encoded_words(text))


def encoded_words(text: str) -> list[str]:
    """RFC 2047 "B" words, none splitting a character, each at most 75 characters."""
    words: list[str] = []
    chunk = b""
    for character in text:
        data = character.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(_word(chunk))
            chunk = b""
        chunk += data
    if chunk or not words:
        words.append(_word(chunk))
    return words


def _word(data: bytes) -> str:
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


def _fold_words(words: list[str]) -> str:
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > 76:
            lines.append(word)
        else:
            lines[-1] += " " + word
    return "\r\n ".join(lines)


def address_list(name: str, mailboxes: Sequence[tuple[str | None, str]]) -> str:
    """`name: mailbox,\\r\\n mailbox, ...`: one mailbox (display name, addr-spec) a line."""
    return f"{name}: " + ",\r\n ".join(mailbox(display, spec) for display, spec in mailboxes)


def mailbox(display: str | None, spec: str) -> str:
    local, _, domain = spec.rpartition("@")
    if not _DOT_ATOM.match(local):
        local = _quoted(local)
    spec = f"{local}@{domain}"
    display = " ".join((display or "").split())
    if not display:
        return spec
    if display.isascii() and display.isprintable():
        phrase = display if _ATOM_TEXT.match(display) else _quoted(display)
    else:
        phrase = " ".join(encoded_words(display))
    return f"{phrase} <{spec}>"


def is_address(spec: str) -> bool:
    """An ASCII addr-spec this writer can put in a field as it is."""
    local, at, domain = spec.rpartition("@")
    return bool(at and local and spec.isascii() and spec.isprintable() and _DOT_ATOM.match(
        domain) and not any(c in local for c in '\\"\r\n'))


def identifiers(name: str, value: str) -> str:
    """Message-ID, In-Reply-To, References: the ids as kept, folded between them."""
    return _fold_words(f"{name}: {' '.join(value.split())}".split(" "))
