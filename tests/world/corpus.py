"""Deterministic mail corpus: same seed, same bytes, on any run.

Sizes are heavy-tailed like a real mailbox: mostly 2-50 KB text, a few
messages with 1-10 MB base64 attachments and rarer 20-30 MB ones. With
`max_size` every message stays under max_size + 8 KB (headers, a long line),
so tests stay small while benchmarks ask for the real thing.
Messages are built as bytes directly (no email package) so big corpora are
cheap. Every corpus of at least len(TRAITS) generated messages contains each
oddity at least once; `stdlib=True` adds CPython's own email test messages
(test/test_email/data/msg_*.txt) when the interpreter ships them.

Folder names follow the source server's conventions (separator ".").
"""
import base64
import datetime
import os
import random
import sysconfig
from dataclasses import dataclass

TRAITS = ("multipart", "rfc2047", "8bit_body", "latin1_body", "8bit_header",
          "long_line", "bare_lf", "no_message_id", "dup_message_id", "no_date")
FOLDERS = (("INBOX", 50), ("Sent", 20), ("Archive.2019", 15), ("Drafts", 5),
           ("Reisen.Überblick", 10))
_EPOCH = datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC)
_WORDS = ("mail", "migration", "archive", "invoice", "meeting", "project", "report",
          "budget", "team", "schedule", "review", "draft", "server", "mailbox", "folder",
          "message", "quarterly", "notes", "customer", "travel", "update", "agenda", "lunch",
          "holiday", "contract", "offer")
_NAMES = (("Anna Mueller", "anna@example.de"), ("Bob Smith", "bob@example.com"),
          ("Chloe Durand", "chloe@example.fr"), ("Dmitri Ivanov", "dmitri@example.ru"))


@dataclass(frozen=True)
class CorpusMessage:
    raw: bytes
    folder: str
    flags: tuple
    internaldate: datetime.datetime
    traits: frozenset


def stdlib_messages():
    """CPython's email test messages as (name, bytes), sorted; [] if absent."""
    data = os.path.join(sysconfig.get_paths()["stdlib"], "test", "test_email", "data")
    if not os.path.isdir(data):
        return []
    names = sorted(n for n in os.listdir(data) if n.startswith("msg_") and n.endswith(".txt"))
    result = []
    for name in names:
        with open(os.path.join(data, name), "rb") as f:
            result.append((name, f.read()))
    return result


class _Builder:
    """Draws everything from one seeded Random, in a fixed order."""

    def __init__(self, seed, max_size, attachment_rate, huge_rate):
        self.rng = random.Random(seed)
        self.seed = seed
        self.max_size = max_size
        self.attachment_rate = attachment_rate
        self.huge_rate = huge_rate
        self.lines = [" ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(6, 14)))
                      .encode() for _ in range(256)]
        self.message_ids = []

    def traits(self, index):
        if index < len(TRAITS):
            return {TRAITS[index]}
        return {t for t in TRAITS if self.rng.random() < 0.06}

    def text(self, size, eol):
        out, total = [], 0
        while total < size:
            line = self.rng.choice(self.lines)
            out.append(line)
            total += len(line) + len(eol)
        return eol.join(out) + eol

    def text_size(self):
        size = int(self.rng.lognormvariate(9.0, 0.8))  # median ~8 KB
        return self._cap(min(max(size, 2000), 50000))

    def attachment_size(self):
        roll = self.rng.random()
        if roll < self.huge_rate:
            return self._cap(self.rng.randint(20 << 20, 30 << 20))
        if roll < self.huge_rate + self.attachment_rate:
            return self._cap(int(2 ** self.rng.uniform(20, 23.3)))  # 1-10 MB
        return None

    def _cap(self, size):
        """Text and attachment get half of max_size each."""
        return size if self.max_size is None else min(size, self.max_size // 2)

    def message(self, index, traits):
        when = _EPOCH + datetime.timedelta(seconds=self.rng.randint(0, 10 * 365 * 86400))
        folder = self.rng.choices([f for f, _ in FOLDERS], [w for _, w in FOLDERS])[0]
        eol = b"\n" if "bare_lf" in traits else b"\r\n"
        attachment = self._cap(64 * 1024) if "multipart" in traits else self.attachment_size()
        if attachment:
            traits = traits | {"multipart"}
        headers = self.headers(index, traits, when)
        body, content_headers = self.body(traits, eol, attachment)
        raw = eol.join(headers + content_headers) + eol + eol + body
        return CorpusMessage(raw, folder, self.flags(folder), when, frozenset(traits))

    def headers(self, index, traits, when):
        sender, recipient = self.rng.sample(_NAMES, 2)
        subject = f"{self.rng.choice(_WORDS).title()} {self.rng.choice(_WORDS)} #{index}"
        headers = [b"Return-Path: <" + sender[1].encode() + b">",
                   b"Received: from mx.example.net by mail.example.org; "
                   + _date(when).encode()]
        if "rfc2047" in traits:
            headers.append(b"From: =?utf-8?b?" + base64.b64encode("Zoë Ångström".encode())
                           + b"?= <" + sender[1].encode() + b">")
            headers.append(b"Subject: =?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?= " + subject.encode())
        else:
            headers.append(f"From: {sender[1]}".encode())
            headers.append(b"Subject: " + subject.encode())
        name = "Jürgen Groß" if "8bit_header" in traits else recipient[0]
        headers.append(f'To: "{name}" <{recipient[1]}>'.encode())
        if "no_date" not in traits:
            sent = when - datetime.timedelta(minutes=self.rng.randint(0, 90))
            headers.append(b"Date: " + _date(sent).encode())
        if "no_message_id" not in traits:
            headers.append(b"Message-ID: " + self.message_id(index, traits))
        return [*headers, b"MIME-Version: 1.0"]

    def message_id(self, index, traits):
        if "dup_message_id" in traits and self.message_ids:
            return self.rng.choice(self.message_ids)
        mid = f"<{self.seed}.{index}.{self.rng.getrandbits(32):08x}@corpus.example>".encode()
        self.message_ids.append(mid)
        return mid

    def body(self, traits, eol, attachment):
        text = self.text(self.text_size(), eol)
        if "long_line" in traits:
            text += b"x" * self.rng.randint(1001, 5000) + eol
        charset, encoding = b"us-ascii", b"7bit"
        if "8bit_body" in traits:
            text = "Grüße, naïve café — ünïcödé\n".encode().replace(b"\n", eol) + text
            charset, encoding = b"utf-8", b"8bit"
        elif "latin1_body" in traits:
            text = "Grüße aus Köln, façade\n".encode("latin-1").replace(b"\n", eol) + text
            charset, encoding = b"iso-8859-1", b"8bit"
        text_headers = [b"Content-Type: text/plain; charset=" + charset,
                        b"Content-Transfer-Encoding: " + encoding]
        if not attachment:
            return text, text_headers
        boundary = b"=_corpus_%08x" % self.rng.getrandbits(32)
        data = base64.encodebytes(self.rng.randbytes(attachment * 3 // 4)).replace(b"\n", eol)
        body = (b"This is a multi-part message in MIME format." + eol
                + b"--" + boundary + eol + eol.join(text_headers) + eol + eol + text
                + b"--" + boundary + eol
                + b"Content-Type: application/octet-stream; name=\"data.bin\"" + eol
                + b"Content-Disposition: attachment; filename=\"data.bin\"" + eol
                + b"Content-Transfer-Encoding: base64" + eol + eol + data
                + b"--" + boundary + b"--" + eol)
        return body, [b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\""]

    def flags(self, folder):
        flags = []
        for flag, rate in (("\\Seen", 0.75), ("\\Answered", 0.1), ("\\Flagged", 0.05),
                           ("$Forwarded", 0.03), ("Work", 0.03)):
            if self.rng.random() < rate:
                flags.append(flag)
        if folder == "Drafts":
            flags.append("\\Draft")
        return tuple(flags)


def _date(when):
    offset = datetime.timezone(datetime.timedelta(hours=1))
    return when.astimezone(offset).strftime("%a, %d %b %Y %H:%M:%S %z")


def generate(seed=0, count=100, *, max_size=None, attachment_rate=0.01, huge_rate=0.0006,
             stdlib=True):
    """`count` generated messages (+ the stdlib ones) as CorpusMessage list."""
    builder = _Builder(seed, max_size, attachment_rate, huge_rate)
    messages = [builder.message(i, builder.traits(i)) for i in range(count)]
    if stdlib:
        for name, raw in stdlib_messages():
            when = _EPOCH + datetime.timedelta(days=builder.rng.randint(0, 3650))
            messages.append(CorpusMessage(raw, "INBOX", ("\\Seen",), when,
                                          frozenset({"stdlib", "stdlib:" + name})))
    return messages


def iterate(seed=0, count=100, *, max_size=None, attachment_rate=0.01, huge_rate=0.0006):
    """`generate`'s generated messages (no stdlib ones) one at a time, the same bytes, for
    seeds too big to hold in memory."""
    builder = _Builder(seed, max_size, attachment_rate, huge_rate)
    for index in range(count):
        yield builder.message(index, builder.traits(index))
