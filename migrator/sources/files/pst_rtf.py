"""The HTML inside an RTF body that encapsulates it ([MS-OXRTFEX] section 2.1.3).

Outlook often keeps an HTML message only as RTF written with \\fromhtml1: the HTML markup sits
in {\\*\\htmltag ...} groups, the text between them outside \\htmlrtf ... \\htmlrtf0 runs (which
hold RTF-only rendering). Reading those back gives the original HTML, so the rebuilt message
can carry text/html instead of an RTF file.
"""

from __future__ import annotations

import codecs
import re

from migrator.sources.files.pst_props import charset

_TOKEN = re.compile(
    rb"\\([a-zA-Z]+)(-?\d+)? ?"  # control word, optional parameter, its delimiting space
    rb"|\\'([0-9a-fA-F]{2})"  # a byte in the document's code page
    rb"|\\(.)"  # control symbol
    rb"|([{}])"
    rb"|[\r\n]+"  # line ends in RTF source mean nothing
    rb"|([^\\{}\r\n]+)",
    re.DOTALL,
)
_SKIPPED_DESTINATIONS = frozenset({b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict",
                                   b"object", b"listtable", b"listoverridetable"})
_SYMBOLS = {b"{": "{", b"}": "}", b"\\": "\\", b"~": "\xa0", b"_": "-", b"-": "", b"\t": "\t"}
_WORDS = {b"par": "\r\n", b"line": "\r\n", b"tab": "\t", b"lquote": "\u2018",
          b"rquote": "\u2019", b"ldblquote": "\u201c", b"rdblquote": "\u201d",
          b"bullet": "\u2022", b"endash": "\u2013", b"emdash": "\u2014"}


def is_encapsulated_html(rtf: bytes) -> bool:
    return b"\\fromhtml1" in rtf[:1000]


def html_from_rtf(rtf: bytes) -> tuple[bytes, str] | None:
    """The encapsulated HTML and its charset (the RTF's \\ansicpg), None if not \\fromhtml1."""
    if not is_encapsulated_html(rtf):
        return None
    found = re.search(rb"\\ansicpg(\d+)", rtf[:1000])
    name = charset(int(found.group(1))) if found else None
    name = name or (f"cp{found.group(1).decode()}" if found else "windows-1252")
    try:
        codecs.lookup(name)
    except LookupError:
        name = "windows-1252"
    return _Reader(name).read(rtf).encode(name, "xmlcharrefreplace"), name


class _Group:
    __slots__ = ("htmlrtf", "htmltag", "skip", "uc")

    def __init__(self, htmlrtf: bool = False, htmltag: bool = False, skip: bool = False,
                 uc: int = 1) -> None:
        self.htmlrtf, self.htmltag, self.skip, self.uc = htmlrtf, htmltag, skip, uc

    def copy(self) -> _Group:
        return _Group(self.htmlrtf, self.htmltag, self.skip, self.uc)


class _Reader:
    def __init__(self, codec: str) -> None:
        self._codec = codec
        self._out: list[str] = []
        self._bytes = bytearray()
        self._group = _Group()
        self._stack: list[_Group] = []
        self._destination = False  # the group just opened: its first word may name it
        self._starred = False
        self._skip_chars = 0  # fallback characters after \uN still to skip

    def read(self, rtf: bytes) -> str:
        for token in _TOKEN.finditer(rtf):
            word, param, hexbyte, symbol, brace, text = token.groups()
            if brace is not None:
                self._brace(brace)
                self._starred = False
                continue  # _brace says whether the next word may name a destination
            if word is not None:
                self._word(word, int(param) if param is not None else None)
            elif symbol == b"*":
                self._starred = True
                continue
            elif hexbyte is not None:
                self._emit_byte(int(hexbyte, 16))
            elif symbol is not None:
                self._emit(_SYMBOLS.get(symbol, ""))
            elif text is not None:
                self._emit_text(text)
            self._destination = False
            self._starred = False
        self._flush()
        return "".join(self._out)

    def _brace(self, brace: bytes) -> None:
        self._flush()
        if brace == b"{":
            self._stack.append(self._group)
            self._group = self._group.copy()
            self._destination = True
        elif self._stack:
            self._group = self._stack.pop()
        self._skip_chars = 0

    def _word(self, word: bytes, param: int | None) -> None:
        group = self._group
        if self._destination and (self._starred or word in _SKIPPED_DESTINATIONS):
            if word == b"htmltag":
                group.htmltag = True
            else:
                group.skip = True
            return
        if word == b"htmlrtf":
            self._flush()
            group.htmlrtf = param != 0
        elif word == b"uc" and param is not None:
            group.uc = param
        elif word == b"u" and param is not None:
            self._emit(chr(param % 0x10000 if param < 0 else param))
            self._skip_chars = group.uc
        elif word in _WORDS:
            self._emit(_WORDS[word])

    def _visible(self) -> bool:
        group = self._group
        return not group.skip and (group.htmltag or not group.htmlrtf)

    def _emit_text(self, text: bytes) -> None:
        if self._skip_chars:
            dropped = min(self._skip_chars, len(text))
            text, self._skip_chars = text[dropped:], self._skip_chars - dropped
        if text and self._visible():
            self._bytes += text

    def _emit_byte(self, value: int) -> None:
        if self._skip_chars:
            self._skip_chars -= 1
        elif self._visible():
            self._bytes.append(value)

    def _emit(self, text: str) -> None:
        if self._visible() and text:
            self._flush()
            self._out.append(text)

    def _flush(self) -> None:
        if self._bytes:
            self._out.append(self._bytes.decode(self._codec, "replace"))
            self._bytes.clear()
