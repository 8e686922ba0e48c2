"""Search on a PostgreSQL manifest gives what it gives on SQLite: one archive's messages
(the test corpus, CPython's odd e-mail samples and a few made here) written to both kinds
of manifest, indexed by the incremental indexer on each, and the same query set run on
both must return the same message ids in the same order. Also: hostile queries stay
harmless searches, `index --rebuild` refills the PostgreSQL index, a NUL in a header is
indexed, and the GIN index is what answers a word query."""

from __future__ import annotations

import datetime
import json

import pytest
from sqlalchemy import text

from migrator.archive.blobs import BlobStore
from migrator.archive.db import Manifest, open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.archive.search_index import attach_indexer
from migrator.archive.search_query import SearchQueryError, parse, run, validate
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.world import corpus
from tests.world.configs import Config

MADE_HERE = [
    ("INBOX", b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\r\n"
              b"To: team@example.org\r\nCc: Zo\xc3\xab <zoe@example.fr>\r\n"
              b"Subject: Caf\xc3\xa9 \"quoted\" news\x00here\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
              b"Na\xc3\xafve budget, anna@example.de wrote: it's done.\r\n"),
    ("100%_done", b"From: bob@example.com\r\nSubject: percent folder\r\n"
                  b"Date: Sat, 4 Jan 2020 10:00:00 +0000\r\n\r\n"
                  b"budget: drop table search_docs\r\n"),
    ("100x_done", b"From: bob@example.com\r\nSubject: lookalike folder\r\n"
                  b"Date: Sun, 5 Jan 2020 10:00:00 +0000\r\n\r\nbudget\r\n"),
]

QUERIES = [
    "budget", "Budget", "budg*", "\"quarterly report\"", "\"quarterly rep\" *",
    "budget OR invoice", "budget NOT invoice", "budget invoice", "budget AND invoice",
    "(budget OR invoice) AND meeting", "budget OR invoice NOT meeting",
    "meeting NOT budget invoice", "mueller", "muller", "jurgen", "naive", "cafe",
    "from:anna", "from:\"anna mueller\"", "from:mueller", "to:team", "cc:zoe",
    "subject:news", "subject:\"quoted news\"", "subject:caf*", "from:bob budget",
    "folder:INBOX budget", "folder:Archive*", "folder:100%_done", "folder:100?_done",
    "folder:Reisen.*", "after:2019-01-01 budget", "before:2016-01-01", "after:2030-01-01",
    "foo_bar", "anna example de", "anna@example.de", "x-y", "NOT budget", "budget OR (invoice",
    "\"anna@example.de\"",
    "\"'); drop table search_docs; --\"", "\"\"", "budget \"\"", "\"\" OR invoice",
    "the", "message", "mail*", "x",
]


def fill(manifest: Manifest, store: BlobStore) -> None:
    """The same messages, in the same order, into `manifest` (so the same ids)."""
    attach_indexer(manifest, store)
    messages = [(m.folder, m.raw, m.internaldate)
                for m in corpus.generate(seed=16, count=40, max_size=20_000)]
    when = datetime.datetime(2021, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    messages += [(folder, raw, when) for folder, raw in MADE_HERE]
    with manifest.session() as session:
        account = ensure_account(session, "alice", "imap")
        folders = {name: ensure_folder(session, account, name).id
                   for name in dict.fromkeys(folder for folder, _, _ in messages)}
    batches: dict[str, list[FetchedMessage]] = {}
    for uid, (folder, raw, date) in enumerate(messages, start=1):
        batches.setdefault(folder, []).append(FetchedMessage(
            raw, uid=uid, uidvalidity=1, internaldate=date.isoformat()))
    for folder, batch in batches.items():  # one batch per folder: seconds fewer
        add_messages(manifest, store, folders[folder], batch)
    manifest.close()  # lets the indexer finish its queue


def search(manifest: Manifest, query: str) -> list[int] | str:
    """The ids found, newest first, or "refused" (a query error)."""
    parsed = parse(query)
    with manifest.session() as session:
        try:
            validate(session, parsed)
        except SearchQueryError:
            return "refused"
        return [hit.id for hit in run(session, "alice", parsed, 1000)]


def docs(manifest: Manifest) -> int:
    with manifest.session() as session:
        return int(session.execute(text("SELECT count(*) FROM search_docs")).scalar() or 0)


@pytest.fixture(scope="module")
def both(tmp_path_factory, postgres_server):
    """An SQLite and a PostgreSQL manifest over one blob store, filled alike."""
    root = tmp_path_factory.mktemp("parity")
    store = BlobStore(root)
    lite = open_manifest(f"sqlite:///{root / 'manifest.sqlite'}")
    fill(lite, store)
    url = postgres_server.create_database()
    pg = open_manifest(url)
    fill(pg, store)
    yield lite, pg, url
    lite.engine.dispose()
    pg.engine.dispose()


def test_both_manifests_find_the_same_messages(both):
    lite, pg, _ = both
    assert docs(lite) == docs(pg) > 43  # every message indexed, on each
    found = {query: search(lite, query) for query in QUERIES}
    assert {query: search(pg, query) for query in QUERIES} == found
    assert sum(ids not in ([], "refused") for ids in found.values()) >= 30  # it finds things
    assert found["NOT budget"] == found["x-y"] == "refused"
    assert len(found["budget"]) > len(found["budget NOT invoice"]) > 0
    assert set(found["muller"]) <= set(found["jurgen"]) and found["muller"]  # "Jürgen Müller"
    assert found["folder:100%_done"] == found["\"'); drop table search_docs; --\""] != []
    assert len(found["folder:100?_done"]) == 2


def test_hostile_and_unreadable_queries(both, tmp_path):
    _, pg, url = both
    config = Config(tmp_path / "archive", database=url).write(tmp_path / "m.toml")
    for query in ["'); drop table search_docs; --", "x-y", "NOT budget", "budget OR",
                  "(budget", '"unclosed', "bar (budget OR invoice)", "*"]:
        result = run_cli("-c", config, "search", "alice", query)
        assert result.status == ExitStatus.USAGE, (query, result.stdout)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    quoted = run_cli("--json", "-c", config, "search", "alice",
                     '"\'); drop table search_docs; --"')
    assert quoted.status == ExitStatus.OK, quoted.stderr
    assert [hit["subject"] for hit in json.loads(quoted.stdout)["messages"]] == [
        "percent folder"]
    with pg.session() as session:
        assert session.execute(text("SELECT count(*) FROM search_docs")).scalar() == docs(pg)


def test_a_nul_in_a_header_is_indexed_and_shown(both):
    _, pg, _ = both
    with pg.session() as session:
        [hit] = run(session, "alice", parse("subject:quoted"), 10)
    assert hit.subject == 'Café "quoted" news\ufffdhere'


def test_the_gin_index_answers_word_queries(both):
    _, pg, _ = both
    from migrator.archive.search_pg import TERMS
    with pg.session() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in session.execute(text(
            f"EXPLAIN SELECT doc_id FROM search_fts s WHERE {TERMS} @@ "
            "CAST('budget' AS tsquery)")))
    assert "ix_search_fts_terms" in plan


def test_index_rebuild_refills_the_postgresql_index(tmp_path, postgres_url):
    store = BlobStore(tmp_path / "archive")
    manifest = open_manifest(postgres_url)
    with manifest.session() as session:
        folder = ensure_folder(session, ensure_account(session, "alice", "imap"), "INBOX").id
    for uid, (_, raw) in enumerate(MADE_HERE, start=1):
        add_messages(manifest, store, folder, [FetchedMessage(raw, uid=uid, uidvalidity=1)])
    manifest.close()
    config = Config(tmp_path / "archive", database=postgres_url,
                    search_index=False).write(tmp_path / "m.toml")
    first = run_cli("-c", config, "index", "alice")
    assert first.status == ExitStatus.OK, first.stderr
    assert "alice: indexed 3 stored message(s)" in first.stdout
    again = run_cli("-c", config, "index", "alice", "--rebuild")
    assert "alice: indexed 3 stored message(s)" in again.stdout
    found = run_cli("--json", "-c", config, "search", "alice", "muller", "cc:zoe")
    assert [hit["subject"] for hit in json.loads(found.stdout)["messages"]] == [
        'Café "quoted" news\ufffdhere']
