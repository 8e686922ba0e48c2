"""`migrator search`, `show` and `index` on an archive written through the archive layer:
indexed as rows commit, caught up when not, queries with their filters, and an archive from
before the index (schema 0002) made searchable."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from migrator.archive.blobs import BlobStore
from migrator.archive.db import alembic_config, make_engine, open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.archive.search_index import attach_indexer
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.world.configs import Config


def message(subject: str, body: str, *, sender: str = "anna@example.de",
            date: str = "Wed, 1 May 2019 12:00:00 +0000") -> bytes:
    return (f"From: {sender}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
            "\r\n").encode() + base64.encodebytes(body.encode())


MESSAGES = {
    "INBOX": [message("=?UTF-8?B?UmVpc2Vrb3N0ZW4gTcO8bmNoZW4=?=", "Der Zaunkönig singt"),
              message("lunch", "quarterly budget", sender="bob@example.com",
                      date="Mon, 3 Jun 2019 08:00:00 +0000")],
    "Archive.2018": [message("old news", "budget from last year",
                             date="Fri, 2 Mar 2018 10:00:00 +0000")],
}


def archive(tmp_path: Path, *, indexer: bool, **config: object) -> Path:
    """alice's archive written through `add_messages` (the archive writer), with the
    incremental indexer attached as the CLI attaches it, or without."""
    path = Config(tmp_path / "archive", **config).write(tmp_path / "migrator.toml")  # type: ignore[arg-type]
    manifest = open_manifest(f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}")
    store = BlobStore(tmp_path / "archive")
    if indexer:
        attach_indexer(manifest, store)
    uid = 0
    for folder, raws in MESSAGES.items():
        with manifest.session() as session:
            folder_id = ensure_folder(session, ensure_account(session, "alice", "imap"),
                                      folder).id
        for raw in raws:
            uid += 1
            add_messages(manifest, store, folder_id, [FetchedMessage(raw, uid=uid, uidvalidity=1)])
    manifest.close()
    return path


def indexed(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}")
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM search_docs")).scalar()
    engine.dispose()
    return int(count or 0)


def search(config: Path, *query: str) -> list[dict[str, object]]:
    result = run_cli("--json", "-c", config, "search", "alice", *query)
    assert result.status == ExitStatus.OK, result.stderr
    return json.loads(result.stdout)["messages"]


def subjects(config: Path, *query: str) -> list[str]:
    return [str(hit["subject"]) for hit in search(config, *query)]


def test_messages_are_indexed_as_their_rows_commit(tmp_path: Path) -> None:
    archive(tmp_path, indexer=True)
    assert indexed(tmp_path) == 3  # before any search or `index` ran


def test_words_fields_folders_and_dates(tmp_path: Path) -> None:
    config = archive(tmp_path, indexer=True)
    assert subjects(config, "zaunkönig") == ["Reisekosten München"]  # base64 UTF-8 body
    assert subjects(config, "munchen") == ["Reisekosten München"]  # RFC 2047, no diacritics
    assert subjects(config, "budget") == ["lunch", "old news"]  # newest first
    assert subjects(config, "budget", "from:bob") == ["lunch"]
    assert subjects(config, "subject:news") == ["old news"]
    assert subjects(config, "budget", "folder:Archive*") == ["old news"]
    assert subjects(config, "budget", "before:2019-01-01") == ["old news"]
    assert subjects(config, "after:2019-05-01") == ["lunch", "Reisekosten München"]
    assert subjects(config, '"quarterly budget"') == ["lunch"]
    assert subjects(config, "budget NOT quarterly") == ["old news"]
    assert subjects(config, "budget", "--limit", "1") == ["lunch"]
    assert subjects(config, "nowhere") == []


def test_not_indexed_messages_are_caught_up_by_search(tmp_path: Path) -> None:
    config = archive(tmp_path, indexer=False)
    assert indexed(tmp_path) == 0
    assert subjects(config, "zaunkönig") == ["Reisekosten München"]
    assert indexed(tmp_path) == 3


@pytest.mark.parametrize("query", ['"unclosed', "before:2019-13-01", "nosuchfield:x",
                                   "subject:", "AND"])
def test_a_query_it_cannot_read_is_one_usage_line(tmp_path: Path, query: str) -> None:
    config = archive(tmp_path, indexer=False)
    result = run_cli("-c", config, "search", "alice", query)
    assert result.status == ExitStatus.USAGE, result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_table_and_show(tmp_path: Path) -> None:
    config = archive(tmp_path, indexer=True)
    table = run_cli("-c", config, "search", "alice", "budget")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "DATE", "FOLDER", "FROM", "SUBJECT"]
    assert lines[1].split()[1:] == ["2019-06-03", "08:00", "INBOX", "bob@example.com", "lunch"]
    hit = search(config, "zaunkönig")[0]
    shown = run_cli("-c", config, "show", str(hit["id"]))
    assert "Subject: Reisekosten München" in shown.stdout
    assert "Der Zaunkönig singt" in shown.stdout
    raw = run_cli("-c", config, "show", str(hit["id"]), "--raw")
    assert raw.stdout.encode("utf-8", "surrogateescape") == MESSAGES["INBOX"][0]
    missing = run_cli("-c", config, "show", "999")
    assert missing.status == ExitStatus.USAGE and "999" in missing.stderr


ROWS_AT_0002 = [
    "INSERT INTO accounts (id, name, source_kind, created_at) "
    "VALUES (1, 'alice', 'pop3', '2026-11-01 10:00:00')",
    "INSERT INTO folders (id, account_id, name, raw_name) VALUES (1, 1, 'INBOX', 'INBOX')",
]


def test_an_archive_from_before_the_index_is_upgraded_and_indexed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}"
    (tmp_path / "archive").mkdir()
    store = BlobStore(tmp_path / "archive")
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
        for statement in ROWS_AT_0002:
            conn.execute(text(statement))
        for number, raw in enumerate(MESSAGES["INBOX"], start=1):
            ref = store.put(raw)
            conn.execute(text("INSERT INTO blobs (sha256, size, stored_at) VALUES "
                              "(:sha, :size, '2026-11-01 10:00:00')"),
                         {"sha": ref.sha256, "size": ref.size})
            conn.execute(text("INSERT INTO messages (folder_id, uidl, sha256, size, flags, "
                              "first_seen) VALUES (1, :uidl, :sha, :size, '', "
                              "'2026-11-01 10:00:00')"),
                         {"uidl": f"u{number}", "sha": ref.sha256, "size": ref.size})
    engine.dispose()
    config = Config(tmp_path / "archive", search_index=False).write(tmp_path / "m.toml")
    result = run_cli("-c", config, "index", "alice", "--rebuild")
    assert result.status == ExitStatus.OK, result.stderr
    assert "alice: indexed 2 stored message(s)" in result.stdout
    assert indexed(tmp_path) == 2
    assert subjects(config, "zaunkönig") == ["Reisekosten München"]
    again = run_cli("-c", config, "index", "alice")
    assert "alice: indexed 0 stored message(s)" in again.stdout


def test_an_account_with_nothing_archived_is_one_usage_line(tmp_path: Path) -> None:
    config = archive(tmp_path, indexer=False)
    result = run_cli("-c", config, "search", "nobody", "budget")
    assert result.status == ExitStatus.USAGE
    assert "account nobody has nothing in the archive" in result.stderr
