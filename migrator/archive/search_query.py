"""`migrator search` queries: field filters parsed off, the rest handed to FTS5 as written.

    budget "quarterly report" from:anna subject:invoice folder:INBOX after:2019-01-01

Words, "phrases", OR, NOT, prefix* and (groups) are FTS5's own syntax. `from:`, `to:`,
`cc:` and `subject:` match words in that header (a quoted value is a phrase), `folder:` an
archived folder by name (`*` and `?` as wildcards), `after:D` messages dated D or later,
`before:D` earlier than D (D is YYYY-MM-DD, the Date header in UTC, else the INTERNALDATE).
On a PostgreSQL manifest `run` and `validate` hand over to search_query_pg, which reads the
same syntax the way FTS5 does and finds the same messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from migrator.errors import UsageError

COLUMNS = {"from": "sender", "to": "recipients", "cc": "cc", "subject": "subject"}
FILTER = re.compile(r'(?<!\S)(from|to|cc|subject|folder|before|after):("[^"]*"|\S+)',
                    re.IGNORECASE)
USAGE = ('search: words, "phrases", OR, NOT, prefix*, from: to: cc: subject: folder: '
         'before:YYYY-MM-DD after:YYYY-MM-DD')


class SearchQueryError(UsageError):
    """A query FTS5 or the filters cannot read (exit 2)."""


@dataclass
class Query:
    words: str = ""  # FTS5 syntax
    fields: list[tuple[str, str]] = field(default_factory=list)  # (column, value)
    folders: list[str] = field(default_factory=list)
    after: date | None = None
    before: date | None = None

    def match(self) -> str:
        """The FTS5 MATCH expression, '' when only folder/date filters were given."""
        parts = [f"({self.words})"] if self.words else []
        parts += [f"{column} : {_phrase(value)}" for column, value in self.fields]
        return " AND ".join(parts)


def parse(query: str) -> Query:
    parsed = Query()
    for found in FILTER.finditer(query):
        name, value = found.group(1).lower(), found.group(2)
        if value.startswith('"'):
            value = value[1:-1]
        if not value.strip():
            raise SearchQueryError(f"{name}: needs a value ({USAGE})")
        if name in COLUMNS:
            parsed.fields.append((COLUMNS[name], value))
        elif name == "folder":
            parsed.folders.append(value)
        else:
            setattr(parsed, name, _day(name, value))
    parsed.words = " ".join(FILTER.sub(" ", query).split())
    if not parsed.words and not parsed.fields and not parsed.folders \
            and parsed.after is None and parsed.before is None:
        raise SearchQueryError(f"empty query ({USAGE})")
    return parsed


def _day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SearchQueryError(f"{name}:{value}: not a date, use YYYY-MM-DD") from None


def _phrase(value: str) -> str:
    """A filter's value as an FTS5 phrase (quotes doubled), `*` at its end kept as prefix."""
    prefix = value.endswith("*")
    core = value.rstrip("*").replace('"', '""')
    return f'"{core}"' + (" *" if prefix else "")


@dataclass(frozen=True)
class Hit:
    id: int  # messages.id: what `migrator show` and `export --ids` take
    date: str | None
    folder: str
    sender: str
    subject: str


def run(session: Session, account: str, query: Query, limit: int) -> list[Hit]:
    """The account's messages matching `query` (`validate`d), newest first."""
    if session.get_bind().dialect.name == "postgresql":
        from migrator.archive import search_query_pg
        return search_query_pg.run(session, account, query, limit)
    where = ["a.name = :account"]
    params: dict[str, object] = {"account": account, "limit": limit}
    match = query.match()
    docs = "search_docs d"
    if match:  # FTS5 drives (`d.id IN (...)` made SQLite re-read the hits for every row)
        docs = ("(SELECT rowid AS doc_id FROM search_fts WHERE search_fts MATCH :match) hits "
                "JOIN search_docs d ON d.id = hits.doc_id")
        params["match"] = match
    when = "COALESCE(d.date, m.internaldate)"
    add_filters(query, where, params, when, "f.name GLOB {}", _glob)
    return select_hits(session, docs, where, params, when, f"{when} DESC, m.id DESC")


def add_filters(query: Query, where: list[str], params: dict[str, object], when: str,
                folder_test: str, folder_value: Callable[[str], str]) -> None:
    """`folder:` (`folder_test` with the parameter in its `{}`), `after:` and `before:`: the
    same on both databases but for how a folder name is matched."""
    if query.folders:
        alternatives = []
        for index, pattern in enumerate(query.folders):
            alternatives.append(folder_test.format(f":folder{index}"))
            params[f"folder{index}"] = folder_value(pattern)
        where.append("(" + " OR ".join(alternatives) + ")")
    if query.after is not None:
        where.append(f"{when} >= :after")
        params["after"] = query.after.isoformat()
    if query.before is not None:
        where.append(f"{when} < :before")
        params["before"] = query.before.isoformat()


def select_hits(session: Session, docs: str, where: list[str], params: dict[str, object],
                when: str, order: str) -> list[Hit]:
    """The hits: `docs` (search_docs as `d`, maybe joined to the matches) with their
    messages, folders and account, filtered by `where`, in `order`, at most :limit."""
    statement = text(
        f"SELECT m.id, {when}, f.name, d.sender, d.subject FROM {docs} "
        "JOIN messages m ON m.sha256 = d.sha256 JOIN folders f ON f.id = m.folder_id "
        "JOIN accounts a ON a.id = f.account_id "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit")
    rows = session.execute(statement, params).all()
    return [Hit(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def account_exists(session: Session, account: str) -> bool:
    return session.execute(text("SELECT 1 FROM accounts WHERE name = :name"),
                           {"name": account}).first() is not None


def validate(session: Session, query: Query) -> None:
    """FTS5 reads the expression on its own, before anything is indexed or searched: what
    it refuses is the user's query (SearchQueryError)."""
    if session.get_bind().dialect.name == "postgresql":
        from migrator.archive import search_query_pg
        search_query_pg.validate(session, query)
        return
    match = query.match()
    if not match:
        return
    try:
        session.execute(text("SELECT rowid FROM search_fts WHERE search_fts MATCH :match "
                             "LIMIT 1"), {"match": match}).all()
    except OperationalError as exc:
        raise SearchQueryError(f"cannot read the query: {exc.orig} ({USAGE})") from None


def _glob(pattern: str) -> str:
    """A folder pattern (`*`, `?` wildcards) as an SQLite GLOB with `[` taken literally."""
    return pattern.replace("[", "[[]")
