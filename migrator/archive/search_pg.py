"""The search index on PostgreSQL: each message's words as tsvectors, one per field.

The words are cut and folded here, in Python, the way SQLite's FTS5 (`unicode61
remove_diacritics 2`) does it: runs of letters and digits, lower case, accents dropped
(NFD, the marks of Latin letters removed), so "Muller" finds "Müller" and `from:anna` finds
`anna@example.de` on both manifests. NFD, not NFKD: FTS5 keeps compatibility forms
(ligatures, full-width letters, superscripts) as they are, and the marks of Greek and
Cyrillic letters (й), and so does this. PostgreSQL's own parser is not used: it keeps
e-mail addresses and host names whole and depends on the database's locale. The vectors
are handed over as tsvector literals of the lexemes only ('simple', no stemming).

Each field's positions start at 2, so when the GIN index concatenates the fields
(`TERMS`, revision 0006) a gap is left between them: a phrase never matches across two
fields, as in FTS5. PostgreSQL keeps positions up to 16383 and 256 per word; later ones
are not recorded (the word is still found, a phrase that far into a body may not be).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.orm import Session

from migrator.archive.search_text import SearchText

FIELDS = ("sender", "recipients", "cc", "subject", "body")
# The GIN-indexed expression (revision 0006), every field's words, on `search_fts s`
TERMS = "(" + " || ".join(f"s.{name}" for name in FIELDS) + ")"
FIRST_POSITION = 2  # position 1 left free: the gap between concatenated fields
MAX_POSITION = 16383  # PostgreSQL's largest tsvector position
MAX_POSITIONS = 255  # positions kept per word (PostgreSQL keeps at most 256)
MAX_WORD_BYTES = 2000  # longer "words" are not indexed (PostgreSQL refuses over 2047)
_WORD = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same, on (folded, so lower case) ASCII text
# A Latin letter's combining marks, once decomposed (FTS5 keeps Greek and Cyrillic ones: й)
_LATIN_MARKS = re.compile("([\u0000-\u024f\u1e00-\u1eff])[\u0300-\u036f]+")


def fold(text: str) -> str:
    """Lower case without diacritics: what FTS5's `remove_diacritics 2` compares."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _LATIN_MARKS.sub(r"\1", decomposed)).lower()


def words(text: str) -> list[str]:
    """The indexed words of a text (letters and digits; anything else separates)."""
    folded = fold(text)
    found = (_ASCII_WORD if folded.isascii() else _WORD).findall(folded)
    if max(map(len, found), default=0) > MAX_WORD_BYTES // 4:  # else surely short enough
        found = [word for word in found if len(word.encode("utf-8", "replace"))
                 <= MAX_WORD_BYTES]
    return found


def quoted(word: str) -> str:
    """A lexeme in tsvector/tsquery literal syntax (words hold no quotes; safe anyway)."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector(text: str) -> str:
    """The tsvector literal of a text: each word with its positions, from FIRST_POSITION.
    (Words are letters and digits only: nothing in them needs quoting.)"""
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for number, word in enumerate(words(text)[:MAX_POSITION - FIRST_POSITION + 1],
                                  start=FIRST_POSITION):
        positions[word].append(number)
    return " ".join(f"'{word}':{','.join(map(str, where[:MAX_POSITIONS]))}"
                    for word, where in positions.items())


def _text(value: str | None) -> str | None:
    """Text PostgreSQL accepts: NUL made U+FFFD (as the manifest does), lone surrogates '?'."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def write_docs(session: Session, texts: Sequence[tuple[str, SearchText]]) -> int:
    """Rows for extracted texts (PostgreSQL); a blob indexed meanwhile by another process is
    skipped (ON CONFLICT). Two round trips per batch: the documents in one INSERT, then
    their vectors (psycopg pipelines executemany)."""
    if not texts:
        return 0
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            "INSERT INTO search_docs (sha256, date, sender, subject) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256",
            ([sha for sha, _ in texts], [_text(found.date) for _, found in texts],
             [_text(found.sender) for _, found in texts],
             [_text(found.subject) for _, found in texts]))
        ids = {sha: doc_id for doc_id, sha in cursor.fetchall()}
        rows = [(ids[sha], *(tsvector(value) for value in (
                    found.sender, found.recipients, found.cc, found.subject, found.body)))
                for sha, found in texts if sha in ids]
        cursor.executemany(
            "INSERT INTO search_fts (doc_id, sender, recipients, cc, subject, body) "
            "VALUES (%s, %s::tsvector, %s::tsvector, %s::tsvector, %s::tsvector, "
            "%s::tsvector)", rows)
    finally:
        cursor.close()
    return len(rows)
