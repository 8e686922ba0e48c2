"""The PostgreSQL search's text handling: FTS5 query syntax translated to tsquery text, the
words cut and folded as FTS5 cuts them, tsvector literals with a gap between fields, and
folder globs as LIKE patterns. (Running them on PostgreSQL, next to SQLite, is
tests/integration/test_search_postgres.py.)"""

from __future__ import annotations

import sqlite3

import pytest

from migrator.archive.search_pg import MAX_POSITION, fold, tsvector, words
from migrator.archive.search_query import SearchQueryError, parse
from migrator.archive.search_query_pg import Match, compile_match, like, translate


@pytest.mark.parametrize(("query", "tsquery"), [
    ("budget", "'budget'"),
    ("Budget report", "('budget' & 'report')"),
    ('"quarterly report"', "('quarterly' <-> 'report')"),
    ('"quarterly rep" *', "('quarterly' <-> 'rep':*)"),
    ("budg*", "'budg':*"),
    ("budget OR invoice", "('budget' | 'invoice')"),
    ("budget AND invoice", "('budget' & 'invoice')"),
    ("budget NOT invoice", "('budget' & !'invoice')"),
    # FTS5's precedence: adjacent phrases, then NOT, then AND, then OR
    ("a NOT b c", "('a' & !('b' & 'c'))"),
    ("a NOT b AND c", "(('a' & !'b') & 'c')"),
    ("a OR b NOT c", "('a' | ('b' & !'c'))"),
    ("a OR b c", "('a' | ('b' & 'c'))"),
    ("(a OR b) AND c", "(('a' | 'b') & 'c')"),
    ("((a))", "'a'"),
    ("and or not", "('and' & 'or' & 'not')"),  # lower case: words
    ("Zaunkönig Müller", "('zaunkonig' & 'muller')"),  # diacritics dropped, as FTS5 does
    ("foo_bar", "('foo' <-> 'bar')"),  # a bare word of two words is a phrase
    ('"anna@example.de"', "('anna' <-> 'example' <-> 'de')"),
    ('"say ""hi"" now"', "('say' <-> 'hi' <-> 'now')"),  # a quote inside a phrase
    ('"it\'s"', "('it' <-> 's')"),
    ("\"'); drop table search_docs; --\"", "('drop' <-> 'table' <-> 'search' <-> 'docs')"),
    ('""', None),  # a phrase without words finds nothing...
    ('budget ""', "'budget'"),  # ...and is left out next to others, as FTS5 does
    ('"" OR budget', "'budget'"),
    ('budget NOT "!"', "'budget'"),
])
def test_fts5_syntax_becomes_tsquery(query, tsquery):
    assert translate(query) == tsquery


@pytest.mark.parametrize("query", [
    "'); drop table search_docs; --", "x-y", "a:b", "NOT budget", "AND", "budget OR",
    "budget AND", "budget NOT", "(budget", "budget)", "()", '"unclosed', "*",
    "bar (a OR b)", "(a) (b)", "budget + report", "NEAR(a b)", "\\'",
])
def test_what_fts5_refuses_is_a_query_error(query):
    with pytest.raises(SearchQueryError) as error:
        translate(query)
    assert "\n" not in str(error.value)


def test_field_filters_are_phrases_on_their_column_and_narrow_the_terms():
    match = compile_match(parse('budget from:"Anna Müller" subject:rep* cc:@'))
    assert match == Match(
        "('budget' & ('anna' <-> 'muller') & 'rep':*)",
        [("sender", "('anna' <-> 'muller')"), ("subject", "'rep':*"), ("cc", None)])
    assert compile_match(parse("folder:INBOX after:2019-01-01")) is None


def test_words_are_cut_and_folded_as_fts5_does():
    full_width = "\uff26\uff35\uff2c\uff2c"  # kept as it is, as FTS5 keeps it
    assert words(f"Anna Müller <anna@example.de>, Ærø; naïve x-ray 3.5 {full_width} İstanbul") == [
        "anna", "muller", "anna", "example", "de", "ærø", "naive", "x", "ray", "3", "5",
        full_width.lower(), "istanbul"]
    assert fold("ÉCOLE") == "ecole"
    assert words("Привет й ё Ελληνικά") == ["привет", "й", "ё", "ελληνικά"]  # Latin only
    assert words("nul\x00here 日本語") == ["nul", "here", "日本語"]


MIXED = ("Ærø Łódź ﬁne Straße \uff26\uff35\uff2c\uff2c x² café İstanbul ǅ 3.5 foo_bar "
         "résumé Œuvre ñ "
         "Ελληνικά ά Привет й ё Ǘ ṩ ệ Åström Čeština Ğ ş 日本語 it's a-b")


def test_the_words_are_the_terms_fts5_indexes():
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(a, "
                   "tokenize='unicode61 remove_diacritics 2')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, row)")
        db.execute("INSERT INTO t VALUES (?)", (MIXED,))
        terms = sorted(term for (term,) in db.execute("SELECT term FROM v"))
    assert sorted(set(words(MIXED))) == terms


def test_tsvector_literal_positions_leave_a_gap_and_stay_in_range():
    assert tsvector("") == ""
    assert tsvector("Budget report budget") == "'budget':2,4 'report':3"
    long = tsvector("word " * 20_000)
    assert long.startswith("'word':2,3,") and long.count(",") == 254  # 255 positions kept
    spread = tsvector(" ".join(f"w{n}" for n in range(MAX_POSITION + 10)))
    assert f":{MAX_POSITION}" in spread and f":{MAX_POSITION + 1}" not in spread


@pytest.mark.parametrize(("pattern", "expected"), [
    ("INBOX", "INBOX"), ("Archive*", "Archive%"), ("100%_done", "100\\%\\_done"),
    ("a?c", "a_c"), ("back\\slash", "back\\\\slash"), ("[x]", "[x]"),
])
def test_folder_globs_become_escaped_like_patterns(pattern, expected):
    assert like(pattern) == expected
