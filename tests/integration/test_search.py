"""`migrator search` over what a real pull from the test-world Dovecot archived: indexed as
the pull commits, found by words of decoded bodies and headers and by its filters, and got
out again byte for byte with `show --raw` and `export --ids`; on an SQLite and on a
PostgreSQL manifest alike."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.imap_pull_world import PASSWORD_ENV, source_config
from tests.world import manifests
from tests.world.configs import Account, Config, Endpoint
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]
ROOT = Path(__file__).resolve().parents[2]
UTC = datetime.UTC


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def raw(sender: str, subject: str, date: str, body: bytes, kind: str = "text/plain",
        encoding: str = "7bit") -> bytes:
    return (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: <{date.split()[1]}.{len(subject)}@search.example>\r\n"
            "MIME-Version: 1.0\r\n"
            f"Content-Type: {kind}; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n"
            "\r\n").encode() + body


BASE64_BODY = raw("Anna Müller <anna@example.de>", "Reise", "Tue, 7 May 2019 09:00:00 +0200",
                  base64.encodebytes("Der Zaunkönig sitzt auf dem Gartenzaun.\n".encode())
                  .replace(b"\n", b"\r\n"),
                  encoding="base64")
ENCODED_SUBJECT = raw("bob@example.com", "=?UTF-8?Q?Kosten=C3=BCbersicht_Fr=C3=BChjahr?=",
                      "Mon, 3 Jun 2019 08:00:00 +0000", b"see attached figures\r\n")
HTML_ONLY = raw("carol@example.fr", "newsletter", "Wed, 1 Jan 2020 12:00:00 +0000",
                b"<html><head><style>p.marmot{color:red}</style></head><body><p class=\"x\">"
                b"The <b>aardvark</b> digs.</p><script>var pangolin=1;</script></body></html>",
                kind="text/html")
OLD = raw("bob@example.com", "old figures", "Fri, 2 Mar 2018 10:00:00 +0000",
          b"figures from last year\r\n")
MAILBOX = {"INBOX": [BASE64_BODY, ENCODED_SUBJECT, HTML_ONLY], "Reisen": [OLD]}


def seed(server) -> None:
    server.add_user("alice")
    when = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)
    for folder, messages in MAILBOX.items():
        server.seed("alice", folder, [SeedMessage(data, ("\\Seen",), when) for data in messages])


def docs(tmp_path: Path) -> int:
    with manifests.connect(tmp_path / "archive") as conn:
        return int(conn.execute("SELECT count(*) FROM search_docs").fetchone()[0])


def found(config: Path, *query: str) -> list[str]:
    result = run_cli("--json", "-c", config, "search", "alice", *query)
    assert result.status == ExitStatus.OK, result.stderr
    return [hit["subject"] for hit in json.loads(result.stdout)["messages"]]


def ids(config: Path, *query: str) -> list[int]:
    result = run_cli("--json", "-c", config, "search", "alice", *query)
    return [hit["id"] for hit in json.loads(result.stdout)["messages"]]


def test_pulled_mail_is_found_by_decoded_words_and_filters(source_server, tmp_path):
    seed(source_server)
    config = source_config(tmp_path, source_server)
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    assert docs(tmp_path) == 4  # indexed by the pull itself, before any search

    assert found(config, "zaunkönig") == ["Reise"]  # a word of a base64 UTF-8 body
    assert found(config, "gartenzaun", "from:anna") == ["Reise"]
    assert found(config, "kostenübersicht") == ["Kostenübersicht Frühjahr"]  # RFC 2047
    assert found(config, "subject:frühjahr") == ["Kostenübersicht Frühjahr"]
    assert found(config, "aardvark") == ["newsletter"]  # HTML-only: by its text
    assert found(config, "marmot OR pangolin OR class OR html") == []  # not its markup
    assert found(config, "figures") == ["Kostenübersicht Frühjahr", "old figures"]
    assert found(config, "figures", "folder:Reisen") == ["old figures"]
    assert found(config, "from:bob", "before:2019-01-01") == ["old figures"]
    assert found(config, "from:bob", "after:2019-01-01") == ["Kostenübersicht Frühjahr"]


def test_show_raw_and_export_ids_give_the_archived_bytes(source_server, tmp_path):
    seed(source_server)
    config = source_config(tmp_path, source_server)
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    [message_id] = ids(config, "zaunkönig")
    shown = subprocess.run([sys.executable, "-m", "migrator", "-c", str(config), "show",
                            str(message_id), "--raw"], cwd=ROOT, capture_output=True,
                           timeout=120, env=os.environ.copy())
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == BASE64_BODY

    dest = tmp_path / "export"
    wanted = ids(config, "figures")
    result = run_cli("-c", config, "export", "alice", "--format", "eml", str(dest),
                     "--ids", ",".join(map(str, wanted)))
    assert result.status == ExitStatus.OK, result.stderr
    exported = sorted(path.read_bytes() for path in dest.rglob("*.eml"))
    assert exported == sorted([ENCODED_SUBJECT, OLD])
    stranger = run_cli("-c", config, "export", "alice", "--format", "eml",
                       str(tmp_path / "other"), "--ids", "999")
    assert stranger.status == ExitStatus.USAGE and "999" in stranger.stderr


def test_pop3_pull_is_indexed_and_switched_off_index_is_caught_up(source_server, tmp_path):
    seed(source_server)
    pop3 = Endpoint("pop3", port=source_server.pop3_port, username="alice", security="plain",
                    password=f"env:{PASSWORD_ENV}", timeout=20)
    config = Config(tmp_path / "archive", {"alice": Account(pop3)}).write(tmp_path / "p.toml")
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    assert docs(tmp_path) == 3  # POP3 sees INBOX only
    assert found(config, "zaunkönig") == ["Reise"]

    off = tmp_path / "off"
    off.mkdir()
    config = Config(off / "archive", {"alice": Account(Endpoint(
        "imap", port=source_server.imap_port, username="alice", security="plain",
        password=f"env:{PASSWORD_ENV}", timeout=20))}, search_index=False).write(off / "m.toml")
    assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    assert docs(off) == 0
    assert found(config, "aardvark") == ["newsletter"]  # search indexes what is missing
    assert docs(off) == 4
