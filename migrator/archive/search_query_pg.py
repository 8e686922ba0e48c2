"""`migrator search` on PostgreSQL: the query language FTS5 reads, translated to tsquery.

The same words, "phrases", OR, NOT, AND, prefix* and (groups) as on SQLite, read the way
FTS5 reads them: adjacent phrases are ANDed most tightly, then NOT (`a NOT b`: a without
b), then AND, then OR; a bare word is letters, digits, `_` and anything non-ASCII, cut
into words as the index was (search_pg.words), so `foo_bar` is the phrase "foo bar"; a
phrase that holds no word is left out (alone it finds nothing). What FTS5 would refuse
(an operator with nothing on one side, a stray `-` or `'`) is a SearchQueryError.

The tsquery is built from quoted lexemes and handed over as a parameter, never pasted into
SQL: `'); drop table` is a query error, `"'); drop table"` a search for "drop table".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from migrator.archive.search_pg import FIELDS, TERMS, quoted, words
from migrator.archive.search_query import (
    USAGE,
    Hit,
    Query,
    SearchQueryError,
    add_filters,
    select_hits,
)

OPERATORS = ("AND", "OR", "NOT")


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "phrase", "*", "(", ")", or an operator
    value: str = ""


def _bare(char: str) -> bool:
    """A character of an FTS5 bare word."""
    return ord(char) > 127 or char.isalnum() or char in "_\x1a"


def _tokens(query: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(query):
        char = query[at]
        if char.isspace():
            at += 1
        elif char in "()*":
            found.append(_Token(char))
            at += 1
        elif char == '"':
            value, at = _string(query, at + 1)
            found.append(_Token("phrase", value))
        elif _bare(char):
            end = at
            while end < len(query) and _bare(query[end]):
                end += 1
            word = query[at:end]
            found.append(_Token(word) if word in OPERATORS else _Token("word", word))
            at = end
        else:
            raise _error(f'syntax error near "{char}"')
    return found


def _string(query: str, at: int) -> tuple[str, int]:
    """A quoted phrase from just after its opening quote ("" is a quote inside)."""
    value: list[str] = []
    while at < len(query):
        if query[at] == '"':
            if query[at + 1:at + 2] != '"':
                return "".join(value), at + 1
            at += 1
        value.append(query[at])
        at += 1
    raise _error("unterminated string")


def _error(reason: str) -> SearchQueryError:
    return SearchQueryError(f"cannot read the query: {reason} ({USAGE})")


def phrase(value: str, prefix: bool) -> str | None:
    """A phrase's tsquery: its words in a row, the last a prefix if asked; None if none."""
    found = words(value)
    if not found:
        return None
    parts = [quoted(word) for word in found]
    if prefix:
        parts[-1] += ":*"
    return parts[0] if len(parts) == 1 else "(" + " <-> ".join(parts) + ")"


def _joined(parts: list[str | None], operator: str) -> str | None:
    """Parts joined by `&` or `|`; phrases without words are left out (as FTS5 does)."""
    kept = [part for part in parts if part is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else "(" + f" {operator} ".join(kept) + ")"


class _Parser:
    """Recursive descent over FTS5's grammar, each rule returning tsquery text (or None)."""

    def __init__(self, query: str) -> None:
        self.tokens = _tokens(query)
        self.at = 0

    def parse(self) -> str | None:
        result = self._or()
        if self.at < len(self.tokens):
            raise self._unexpected()
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.at].kind if self.at < len(self.tokens) else None

    def _unexpected(self) -> SearchQueryError:
        if self.at >= len(self.tokens):
            return _error("syntax error at the end")
        token = self.tokens[self.at]
        return _error(f'syntax error near "{token.value or token.kind}"')

    def _or(self) -> str | None:
        parts = [self._and()]
        while self._peek() == "OR":
            self.at += 1
            parts.append(self._and())
        return _joined(parts, "|")

    def _and(self) -> str | None:
        parts = [self._not()]
        while self._peek() == "AND":
            self.at += 1
            parts.append(self._not())
        return _joined(parts, "&")

    def _not(self) -> str | None:
        result = self._primary()
        while self._peek() == "NOT":
            self.at += 1
            excluded = self._primary()
            if result is not None and excluded is not None:
                result = f"({result} & !{excluded})"
        return result

    def _primary(self) -> str | None:
        if self._peek() == "(":
            self.at += 1
            inner = self._or()
            if self._peek() != ")":
                raise self._unexpected()
            self.at += 1
            return inner
        parts = []
        while self._peek() in ("word", "phrase"):
            value = self.tokens[self.at].value
            self.at += 1
            prefix = self._peek() == "*"
            self.at += prefix
            parts.append(phrase(value, prefix))
        if not parts:
            raise self._unexpected()
        return _joined(parts, "&")


def translate(words_query: str) -> str | None:
    """The tsquery of an FTS5-syntax query (None: nothing to look for, finds nothing)."""
    return _Parser(words_query).parse()


@dataclass(frozen=True)
class Match:
    """A parsed query's word conditions: `terms` for the GIN index, then per field."""

    terms: str | None
    fields: list[tuple[str, str | None]]


def compile_match(query: Query) -> Match | None:
    """The conditions of `query`; None when it has neither words nor field filters."""
    if not query.words and not query.fields:
        return None
    fields = [(column, phrase(value.rstrip("*"), value.endswith("*")))
              for column, value in query.fields]
    words_query = translate(query.words) if query.words else None
    return Match(_joined([words_query, *(found for _, found in fields)], "&"), fields)


def validate(session: Session, query: Query) -> None:
    """The query translated, and read by PostgreSQL once: what fails is the user's query."""
    match = compile_match(query)
    if match is None or match.terms is None:
        return
    try:
        with session.begin_nested():
            session.execute(text("SELECT CAST(:terms AS tsquery)"), {"terms": match.terms})
    except DBAPIError as exc:
        raise _error(str(exc.orig).splitlines()[0]) from None


def run(session: Session, account: str, query: Query, limit: int) -> list[Hit]:
    """The account's messages matching `query`, newest first (as search_query.run)."""
    where = ["a.name = :account"]
    params: dict[str, object] = {"account": account, "limit": limit}
    docs = "search_docs d"
    match = compile_match(query)
    if match is not None:
        if match.terms is None:
            return []  # only phrases without words: FTS5 finds nothing either
        docs = "search_fts s JOIN search_docs d ON d.id = s.doc_id"
        where.append(f"{TERMS} @@ CAST(:terms AS tsquery)")
        params["terms"] = match.terms
        for index, (column, found) in enumerate(match.fields):
            if found is not None and column in FIELDS:
                where.append(f"s.{column} @@ CAST(:field{index} AS tsquery)")
                params[f"field{index}"] = found
    when = 'COALESCE(d.date, m.internaldate) COLLATE "C"'
    add_filters(query, where, params, when, "f.name LIKE {} ESCAPE '\\'", like)
    return select_hits(session, docs, where, params, when,
                       f"{when} DESC NULLS LAST, m.id DESC")


def like(pattern: str) -> str:
    """A folder pattern (`*`, `?` wildcards, the rest literal) as a LIKE with `\\` escape."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
