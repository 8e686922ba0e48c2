"""IMAP's modified UTF-7 for folder names (RFC 3501, 5.1.3), with the standard library alone.

imapclient has a codec, but importing it loads the whole client (about 30 ms of CPU, email
and zipfile among it); the no-op probes meet a non-ASCII folder name in every look and must
not pay that. The results are imapclient's: the tests hold the two to the same answers, and
a name this decoder cannot read (broken base64, an unpaired surrogate) is left to
imapclient's own decoder, so even a malformed name decodes as the full path decodes it.
"""

from __future__ import annotations

import base64
import re

_SHIFTED = re.compile(r"&([^-]*)(-|$)")  # a shifted run; imapclient also ends one at the end
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DIRECT = re.compile(r"[\x20-\x7e]+")  # printable ASCII stands for itself ('&' aside)


def encode(name: str) -> bytes:
    """The wire form of a Unicode folder name."""
    out = []
    at = 0
    for direct in _DIRECT.finditer(name):
        out.append(_shifted(name[at:direct.start()]))
        out.append(direct.group().replace("&", "&-").encode("ascii"))
        at = direct.end()
    out.append(_shifted(name[at:]))
    return b"".join(out)


def _shifted(text: str) -> bytes:
    if not text:
        return b""
    coded = base64.b64encode(text.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
    return b"&" + coded + b"-"


def decode(wire: bytes) -> str:
    """The Unicode name of a wire form."""
    text = wire.decode("latin-1")  # imapclient reads each byte as one character
    try:
        return _SHIFTED.sub(_unshifted, text)
    except ValueError:  # UnicodeDecodeError too: an unpaired surrogate
        from imapclient import imap_utf7  # the rare broken name: decoded exactly as before

        return imap_utf7.decode(wire)


def _unshifted(run: re.Match[str]) -> str:
    coded = run.group(1)
    if not run.group(2):
        raise ValueError("a shifted run never ended")  # imapclient has its own answer
    if not coded:
        return "&"
    value = 0
    for char in coded.replace(",", "/"):
        value = value << 6 | _BASE64.index(char)  # ValueError: not base64
    bits = 6 * len(coded)
    spare = bits % 16  # UTF-7 allows fewer than 6 spare bits, all zero, after the last unit
    if spare >= 6 or value & ((1 << spare) - 1):
        raise ValueError("a shifted run ends part-way through a character")
    return (value >> spare).to_bytes(bits // 16 * 2, "big").decode("utf-16-be")
