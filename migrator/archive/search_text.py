"""The words of a stored message, for the search index: decoded headers and readable text.

Archived mail is whatever servers handed over, so nothing here may raise on malformed input:
a broken header, an unknown charset, bad base64 or a boundary that never closes yields
less text, never an exception. The `email` package's parser is not used (a whole-message
parse costs about 2.5 ms for the average 90 KB message, more than the pull spends storing
it): only the few header fields used are read, MIME parts are found with `bytes.find` on the
boundary, and only text parts are decoded, so an attachment costs one scan for the next
boundary. The `email` package still decodes RFC 2047 words and dates.

Parts are offsets into the one buffer read (a body is sliced only when it is decoded), and a
boundary is looked for with `memchr` on its leading "-" (absent from base64), so an attached
30 MB file costs a scan at memory speed, not a copy and a substring search.

The indexed text is capped per message (`MAX_TEXT` characters of body, `MAX_PART_BYTES` of
any one part read): a mailing-list digest or a pasted log is found by its first pages, and
one huge text part cannot make the index (or the pull feeding it) slow.
"""

from __future__ import annotations

import binascii
import codecs
import email.header
import email.utils
import html.parser
import re
from dataclasses import dataclass
from datetime import UTC
from email.message import Message
from email.policy import compat32

MAX_TEXT = 64 * 1024  # characters of body text indexed per message
MAX_PART_BYTES = 512 * 1024  # bytes of one text part decoded (base64 lines included)
MAX_HEADER_BYTES = 64 * 1024  # a header block longer than this is cut
MAX_HEADER_TEXT = 2000  # characters kept of one header field
MAX_PARTS = 200  # MIME parts visited per message
MAX_DEPTH = 10  # nesting of multiparts and attached messages

_WANTED = frozenset({"from", "to", "cc", "subject", "date", "content-type",
                     "content-transfer-encoding"})
_ESCAPED = re.compile("[\udc80-\udcff]")
_NEWLINES = re.compile(rb"[\r\n]*")
SCAN_WINDOW = 64 * 1024  # bytes searched for a boundary after each "-" found


@dataclass(frozen=True)
class SearchText:
    """What the index holds of one message."""

    sender: str
    recipients: str  # To
    cc: str
    subject: str
    date: str | None  # the Date header in UTC, ISO 8601 (`2019-05-01T10:00:00+00:00`)
    body: str


def extract(data: bytes) -> SearchText:
    """The searchable text of a raw message (RFC 5322 bytes); never raises."""
    try:
        block, body_start = _split(data, 0, len(data))
        top = _parse_headers(block)
        parts: list[str] = []
        _Walker(parts).walk(top, data, body_start, 0)
        text = " ".join(parts)[:MAX_TEXT]
        return SearchText(_field(top, "From"), _field(top, "To"), _field(top, "Cc"),
                          _field(top, "Subject"), _date(top.get("Date")), text)
    except Exception:  # a message no rule above foresaw: indexed without its text
        return SearchText("", "", "", "", None, "")


def decode_header_value(value: str | None) -> str:
    """A header field as readable text: RFC 2047 words decoded, raw 8-bit bytes taken as
    UTF-8 (else Latin-1), folding undone; never raises."""
    if not value:
        return ""
    value = _unescape(str(value))
    if "=?" not in value:  # no encoded words: nothing to decode
        return _squeeze(value)[:MAX_HEADER_TEXT]
    try:
        words = email.header.decode_header(value)
    except Exception:
        return _squeeze(value)[:MAX_HEADER_TEXT]
    try:
        joined = str(email.header.make_header(words))
    except Exception:  # an unknown charset or bytes it cannot decode: one word at a time
        joined = "".join(chunk if isinstance(chunk, str) else _decode(chunk, charset or "ascii")
                         for chunk, charset in words)
    return _squeeze(joined)[:MAX_HEADER_TEXT]


def _split(data: bytes, start: int, end: int) -> tuple[bytes, int]:
    """(header block, where the body starts) of `data[start:end]`, at the first empty line;
    all header (up to `MAX_HEADER_BYTES`) when there is none."""
    if data[start:start + 1] in (b"\n", b"\r"):  # no headers at all
        return b"", _NEWLINES.match(data, start, end).end()  # type: ignore[union-attr]
    limit = min(end, start + MAX_HEADER_BYTES)
    crlf = data.find(b"\n\r\n", start, limit)
    lf = data.find(b"\n\n", start, crlf + 1 if crlf >= 0 else limit)
    if lf >= 0:
        return data[start:lf + 1], lf + 2
    if crlf >= 0:
        return data[start:crlf + 1], crlf + 3
    return data[start:limit], end


class _Headers:
    """The header fields read, as sent (raw 8-bit bytes as surrogate escapes): what a
    compat32 `Message` holding them returns, without building one per part (it cost more
    than the rest of the parse)."""

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []

    def raw_items(self) -> list[tuple[str, str]]:
        return self.fields

    def get(self, name: str) -> object:
        wanted = name.lower()
        for key, value in self.fields:
            if key.lower() == wanted:
                return value if value.isascii() else compat32.header_fetch_parse(key, value)
        return None

    def get_param(self, param: str) -> object:
        """A Content-Type parameter, as `Message.get_param` reads it."""
        for key, value in self.fields:
            if key.lower() == "content-type":
                if ";" not in value and "=" not in value and value.isascii():
                    # no parameters: Message would take the type itself for one
                    return "" if value.strip().lower() == param else None
                single = Message()
                single[key] = value
                return single.get_param(param)
        return None


def _parse_headers(block: bytes) -> _Headers:
    """The header fields this module reads, unfolded; raw 8-bit bytes kept as surrogate
    escapes. The `email` package's own parser takes several times longer, for fields never
    looked at."""
    headers = _Headers()
    name: str | None = None
    value: list[str] = []
    for line in block.decode("ascii", "surrogateescape").splitlines():
        if line[:1] in (" ", "\t"):
            if name is not None:
                value.append(line)
            continue
        if name is not None:
            headers.fields.append((name, "".join(value).strip()))
        found, colon, rest = line.partition(":")
        name = found.strip() if colon and found.strip().lower() in _WANTED else None
        value = [rest]
    if name is not None:
        headers.fields.append((name, "".join(value).strip()))
    return headers


def _field(headers: _Headers, name: str) -> str:
    """A header as sent (`get` would hide raw 8-bit bytes behind a Header object)."""
    wanted = name.lower()
    values = [value for key, value in headers.raw_items() if key.lower() == wanted]
    return " ".join(decode_header_value(v) for v in values)[:MAX_HEADER_TEXT]


def _date(value: object) -> str | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(_unescape(str(value)))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the zone is unknown; taken as UTC
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):
        return None


class _Walker:
    """Collects the text of each part worth reading into `parts`."""

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self.visited = 0
        self.length = 0

    def walk(self, headers: _Headers, data: bytes, start: int, depth: int) -> None:
        self.walk_part(_Part(headers, data, start, len(data)), depth)

    def walk_part(self, part: _Part, depth: int) -> None:
        headers = part.headers
        self.visited += 1
        if self.visited > MAX_PARTS or depth > MAX_DEPTH or self.length >= MAX_TEXT:
            return
        maintype, subtype = _content_type(headers)
        if maintype == "multipart":
            children = _children(part)
            if subtype == "alternative":
                children = _preferred(children)
            for child in children:
                self.walk_part(child, depth + 1)
        elif maintype == "message" and subtype in ("rfc822", "global"):
            message = _transfer_decoded(headers, part.body())
            inner_block, inner_start = _split(message, 0, len(message))
            inner = _parse_headers(inner_block)
            self.add(" ".join(filter(None, (_field(inner, "From"), _field(inner, "Subject")))))
            self.walk(inner, message, inner_start, depth + 1)
        elif maintype == "text" and subtype in ("plain", "html", "enriched", ""):
            charset = headers.get_param("charset")
            text = _decode(_transfer_decoded(headers, part.body(MAX_PART_BYTES)),
                           charset if isinstance(charset, str) else "utf-8")
            self.add(html_text(text) if subtype == "html" else text)

    def add(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.length += len(text)


def _content_type(headers: _Headers) -> tuple[str, str]:
    value = str(headers.get("Content-Type") or "text/plain")
    kind = value.split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    if not sub:  # "text" or garbage: RFC 2045 says treat it as text/plain
        return "text", "plain"
    return main, sub


class _Part:
    """A MIME part: its headers, and where its body lies in the parent's bytes (sliced only
    when read, so an attachment is never copied)."""

    def __init__(self, headers: _Headers, data: bytes, start: int, end: int) -> None:
        self.headers, self.data, self.start, self.end = headers, data, start, end

    def body(self, limit: int | None = None) -> bytes:
        end = self.end if limit is None else min(self.end, self.start + limit)
        if self.start == 0 and end == len(self.data):
            return self.data
        return self.data[self.start:end]


def _children(part: _Part) -> list[_Part]:
    """The parts of a multipart body, split at its boundary lines; an unclosed last part
    runs to the end, a missing boundary leaves the body as one plain part."""
    data, first, last = part.data, part.start, part.end
    boundary = part.headers.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return [_Part(_parse_headers(b"Content-Type: text/plain\n"), data, first, last)]
    delimiter = b"--" + _unescape(boundary).encode("utf-8", "replace")
    starts: list[int] = []
    position = first
    while len(starts) <= MAX_PARTS:
        found = _find_delimiter(data, delimiter, position, last)
        if found < 0:
            break
        if found == first or data[found - 1:found] == b"\n":
            starts.append(found)
        position = found + len(delimiter)
    children = []
    for index, start in enumerate(starts):
        line_end = data.find(b"\n", start, last)
        if data.startswith(delimiter + b"--", start, last) or line_end < 0:
            break  # the close delimiter
        end = starts[index + 1] if index + 1 < len(starts) else last
        block, body_start = _split(data, line_end + 1,
                                   min(end, line_end + 1 + MAX_HEADER_BYTES))
        children.append(_Part(_parse_headers(block), data, body_start, end))
    return children


def _find_delimiter(data: bytes, delimiter: bytes, start: int, end: int) -> int:
    """`data.find(delimiter, start, end)` for a delimiter starting with "-": each "-" is
    found with memchr (base64 has none, so an attachment is skipped at memory speed), then
    the delimiter is searched for in a window from there."""
    window = max(SCAN_WINDOW, 2 * len(delimiter))
    position = start
    while True:
        dash = data.find(b"-", position, end)
        if dash < 0:
            return -1
        found = data.find(delimiter, dash, min(end, dash + window))
        if found >= 0:
            return found
        position = dash + window - len(delimiter) + 1


def _preferred(children: list[_Part]) -> list[_Part]:
    """Of multipart/alternative, the plain text if there is one (the HTML says the same),
    else the richest part (the last, per RFC 2046)."""
    for child in children:
        if _content_type(child.headers) == ("text", "plain"):
            return [child]
    return children[-1:]


def _transfer_decoded(headers: _Headers, body: bytes) -> bytes:
    encoding = str(headers.get("Content-Transfer-Encoding") or "").strip().lower()
    try:
        if encoding == "base64":
            return _base64(body)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        return b""
    return body


def _base64(body: bytes) -> bytes:
    """Lenient base64: stray characters dropped, a short last group padded or cut."""
    cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
    cleaned = cleaned[:len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))


def _decode(data: bytes, charset: str) -> str:
    """Bytes in a declared charset; an unknown one as UTF-8, undecodable bytes replaced."""
    name = _unescape(str(charset)).strip().strip('"').lower() or "utf-8"
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        name = "utf-8"
    if name in ("us-ascii", "ascii"):
        name = "utf-8"  # 8-bit text labelled ASCII is common; UTF-8 reads ASCII the same
    try:
        return data.decode(name, "replace")
    except Exception:  # a codec that fails on its own terms (e.g. a bad ISO-2022 state)
        return data.decode("utf-8", "replace")


def _unescape(value: str) -> str:
    """The compat32 parser keeps raw 8-bit header bytes as surrogate escapes: read them as
    UTF-8, else Latin-1."""
    if value.isascii() or not _ESCAPED.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _squeeze(text: str) -> str:
    return " ".join(text.split())


class _HtmlText(html.parser.HTMLParser):
    """The text of an HTML document: no tags, no attributes, no script or style."""

    SKIP = frozenset({"script", "style", "head", "title", "template"})
    INLINE = frozenset({"a", "abbr", "b", "big", "code", "em", "font", "i", "mark", "s",
                        "small", "span", "strike", "strong", "sub", "sup", "u"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        if tag not in self.INLINE:
            self.pieces.append(" ")  # <p>a</p><p>b</p> is two words, <b>a</b>b one

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        if tag not in self.INLINE:
            self.pieces.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.pieces.append(data)


def html_text(markup: str) -> str:
    """Readable text of HTML; never raises (what was read before an error is kept)."""
    parser = _HtmlText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:
        pass
    return "".join(parser.pieces)
