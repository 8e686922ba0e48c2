"""`migrator pull` from IMAP sources against the real test-world Dovecot."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import json_lines, json_result, run_cli
from tests.integration.imap_pull_world import (
    PASSWORD_ENV,
    archive_view,
    assert_archive_matches,
    imap_client,
    manifest,
    round_trips,
    row_count,
    server_flags,
    source_config,
)
from tests.integration.profiles import on_each_server
from tests.world.mailstore import SeedMessage

pytestmark = [pytest.mark.world, pytest.mark.manifest_databases]
UTC = datetime.UTC


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def message(n: int, size: int = 2000, mid: str | None = None) -> bytes:
    header = (f"From: a@example.org\r\nSubject: test {n}\r\n"
              + (f"Message-ID: <{mid or n}@example.org>\r\n" if mid != "" else "")
              + "\r\n").encode()
    return header + (b"line %d\r\n" % n) * max(1, size // 10)


def seed(server, folder: str, count: int, start: int = 0, size: int = 2000, flags=("\\Seen",)):
    when = datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)
    return server.seed("alice", folder, [SeedMessage(message(start + i, size), flags, when)
                                         for i in range(count)])


def pull(config, *args):
    return run_cli("-c", config, "pull", "alice", *args)


@on_each_server
def test_every_folder_archived_byte_exact_with_flags_dates_and_the_corpus_oddities(
        source_server, corpus, tmp_path):
    source_server.add_user("alice")
    by_folder: dict[str, list] = {}
    for item in corpus:
        by_folder.setdefault(source_server.folder_name(item.folder), []).append(item)
    seeded = 0  # Cyrus refuses some of CPython's test messages (its profile says which)
    for folder, items in by_folder.items():
        uids = source_server.seed("alice", folder, items)
        seeded += sum(uid is not None for uid in uids)
    client = imap_client(source_server, "alice")
    flags_before = {f: server_flags(client, f) for f in by_folder}

    result = pull(source_config(tmp_path, source_server))

    assert result.status == ExitStatus.OK, result.stderr
    expected = assert_archive_matches(client, tmp_path / "archive")
    assert sum(len(v) for v in expected.values()) == seeded
    assert {f: server_flags(client, f) for f in by_folder} == flags_before  # nothing \Seen
    with manifest(tmp_path / "archive") as db:
        names = {row["name"]: row["raw_name"] for row in db.execute("SELECT * FROM folders")}
        assert names[source_server.folder_name("Reisen.Überblick")] == \
            source_server.folder_name("Reisen.&ANw-berblick")  # modified UTF-7 kept
        ids = {row[0] for row in db.execute("SELECT message_id FROM messages")}
    stdlib = [item for item in corpus if "stdlib" in item.traits]
    assert stdlib, "Python's email test messages belong in the corpus"
    assert None in ids  # the messages without a Message-ID are archived all the same
    assert "pull alice: ok" in result.stdout


@on_each_server
def test_keywords_and_internaldate_offsets_are_recorded_exactly(source_server, tmp_path):
    source_server.add_user("alice")
    client = imap_client(source_server, "alice")
    when = datetime.datetime(2019, 12, 31, 23, 59, 58,
                             tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))
    client.append("INBOX", message(1), flags=["\\Flagged", "$Label1", "Work"], msg_time=when)

    assert pull(source_config(tmp_path, source_server)).status == ExitStatus.OK

    with manifest(tmp_path / "archive") as db:
        row = db.execute("SELECT flags, internaldate, message_id FROM messages").fetchone()
    assert row["flags"] == "$Label1 Work \\Flagged"
    stored = datetime.datetime.fromisoformat(row["internaldate"])
    assert stored == when and stored.utcoffset() is not None
    assert row["message_id"] == "<1@example.org>"


def test_identical_content_in_several_folders_is_stored_once_and_listed_in_each(
        source_server, tmp_path):
    source_server.add_user("alice")
    same = SeedMessage(message(7), ("\\Seen",), None)
    for folder in ("INBOX", "Archive", "All Mail"):
        source_server.seed("alice", folder, [same])

    assert pull(source_config(tmp_path, source_server)).status == ExitStatus.OK

    view = archive_view(tmp_path / "archive")
    assert {len(items) for items in view.values()} == {1} and len(view) == 3
    assert row_count(tmp_path / "archive", "blobs") == 1
    assert len(list((tmp_path / "archive" / "objects").rglob("*.eml"))) == 1


def count_waits(monkeypatch) -> list[int]:
    """For each folder planned, how many times the planning connection waited for an answer
    after sending (its round trips)."""
    from migrator.engine.imap import pull as pull_module

    planned: list[int] = []
    plan = pull_module.plan_folder

    def counted(ctx, source, *args, **kwargs):
        waits: list[int] = []
        try:
            with round_trips(source.wire) as waits:
                return plan(ctx, source, *args, **kwargs)
        finally:
            planned.extend(waits)  # counted once the block has ended

    monkeypatch.setattr(pull_module, "plan_folder", counted)
    return planned


def count_examines(monkeypatch) -> list[str]:
    """The folders the pull EXAMINEs, in order."""
    from migrator.sources.imap import ImapSource

    examined: list[str] = []
    send = ImapSource.send_examine

    def counted(self, folder):
        examined.append(folder.name)
        return send(self, folder)

    monkeypatch.setattr(ImapSource, "send_examine", counted)
    return examined


@on_each_server
def test_a_folder_is_planned_in_one_round_trip_and_fetched_without_a_second_examine(
        source_server, tmp_path, monkeypatch):
    """EXAMINE goes out with what the plan will need, before its answer is read: the
    listing on a first pull; every UID and the changes since the last sync on a delta pass
    (where it took EXAMINE, UID SEARCH, CHANGEDSINCE and the new messages' sizes one after
    another: 0.15 s more per changed folder at 25 ms). A server may run the pipelined
    SEARCH and FETCH at once (Dovecot does), so their answers interleave. The planning
    connection then fetches from the folder its plan left open, without EXAMINE again."""
    source_server.add_user("alice")
    seed(source_server, "INBOX", 20)
    config = source_config(tmp_path, source_server, extra={"connections": 1})
    waits = count_waits(monkeypatch)
    examined = count_examines(monkeypatch)
    assert pull(config).status == ExitStatus.OK
    assert waits == [1]
    assert examined == ["INBOX"]  # the fetch uses the folder the plan left open
    client = imap_client(source_server, "alice")
    client.select_folder("INBOX")
    client.add_flags([3], ["\\Flagged"])
    client.delete_messages([5])
    client.expunge()
    client.unselect_folder()
    seed(source_server, "INBOX", 4, start=50)
    waits.clear()

    result = run_cli("-c", config, "--json", "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert waits == [1]
    assert examined == ["INBOX"] * 2
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["fetched"], summary["flags_updated"], summary["gone"]) == (4, 1, 1)
    assert_archive_matches(client, tmp_path / "archive")


@on_each_server
def test_incremental_run_fetches_only_new_messages_and_records_flags_and_gone(
        source_server, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "INBOX", 20)
    seed(source_server, source_server.folder_name("Archive"), 5, start=100)
    config = source_config(tmp_path, source_server)
    assert pull(config).status == ExitStatus.OK
    client = imap_client(source_server, "alice")
    client.select_folder("INBOX")
    client.add_flags([3], ["\\Flagged", "Important"])
    client.remove_flags([4], ["\\Seen"])
    client.delete_messages([5])
    client.expunge()
    client.unselect_folder()
    seed(source_server, "INBOX", 4, start=50)

    result = run_cli("-c", config, "--json", "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["fetched"] == 4 and summary["flags_updated"] == 2 and summary["gone"] == 1
    assert summary["folders_unchanged"] == 1  # Archive: one STATUS, nothing else
    assert_archive_matches(client, tmp_path / "archive")
    with manifest(tmp_path / "archive") as db:
        gone = db.execute("SELECT uid, gone_at FROM messages WHERE gone_at IS NOT NULL")
        assert [row["uid"] for row in gone] == [5]  # kept, only marked
        runs = db.execute("SELECT command, outcome, counts FROM runs ORDER BY id").fetchall()
    assert [r["outcome"] for r in runs] == ["ok", "ok"]
    assert json.loads(runs[1]["counts"])["fetched"] == 4

    again = run_cli("-c", config, "--json", "pull", "alice")
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["folders_unchanged"] == 2 and "fetched" not in summary


@on_each_server
def test_the_folders_are_fetched_most_messages_first(source_server, tmp_path):
    """Planned and fetched in order of size, not of LIST (engine/imap/pull.py
    `largest_first`): with one connection the batches are fetched as planned, so the
    archive's rows come folder by folder in that order."""
    source_server.add_user("alice")
    counts = {"INBOX": 2, "Aa": 5, "Bb": 1, "Cc": 4, "Dd": 3}
    for number, (name, count) in enumerate(counts.items()):
        seed(source_server, name if name == "INBOX" else source_server.folder_name(name),
             count, start=100 * number)
    config = source_config(tmp_path, source_server, extra={"connections": 1})

    assert pull(config).status == ExitStatus.OK

    with manifest(tmp_path / "archive") as db:
        rows = db.execute("SELECT folder_id, MIN(id) AS first, COUNT(*) AS messages "
                          "FROM messages GROUP BY folder_id").fetchall()
    assert [row["messages"] for row in sorted(rows, key=lambda row: row["first"])] == \
        [5, 4, 3, 2, 1]


def test_fetching_connections_sign_in_while_the_first_folder_is_planned(source_server, tmp_path,
                                                                        monkeypatch):
    """The other connections are started before the first folder that may hold new mail is
    planned, so their sign-ins overlap its EXAMINE and listing; a run that finds only flag
    changes (UIDNEXT as recorded) starts none."""
    from migrator.engine.imap import pull as imap_pull

    order: list[str] = []
    start, plan = imap_pull._start_fetchers, imap_pull.PlanningConnection.plan

    def starting(*args):
        order.append("start")
        return start(*args)

    def planning(self, folder, *args, **kwargs):
        order.append(f"plan {folder.name}")
        return plan(self, folder, *args, **kwargs)

    monkeypatch.setattr(imap_pull, "_start_fetchers", starting)
    monkeypatch.setattr(imap_pull.PlanningConnection, "plan", planning)
    source_server.add_user("alice")
    seed(source_server, "INBOX", 5)
    config = source_config(tmp_path, source_server)
    assert pull(config).status == ExitStatus.OK
    assert order == ["start", "plan INBOX"]
    client = imap_client(source_server, "alice")
    client.select_folder("INBOX")
    client.add_flags([2], ["\\Flagged"])
    client.logout()
    order.clear()

    result = run_cli("-c", config, "--json", "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["flags_updated"] == 1
    assert order == ["plan INBOX"]


def test_changed_uidvalidity_remaps_without_duplicate_rows_or_blobs(source_server, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "INBOX", 12)
    config = source_config(tmp_path, source_server)
    assert pull(config).status == ExitStatus.OK
    archive = tmp_path / "archive"
    blobs_before, rows_before = row_count(archive, "blobs"), row_count(archive, "messages")
    old = source_server.mailbox_status("alice", "INBOX", "uidvalidity")
    source_server.doveadm("mailbox", "update", "-u", "alice", "--uid-validity",
                          str(old + 1000), "INBOX")
    seed(source_server, "INBOX", 2, start=500)

    result = run_cli("-c", config, "--json", "pull", "alice")

    assert result.status == ExitStatus.OK, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["remapped"] == 12
    assert row_count(archive, "messages") == rows_before + 2
    assert row_count(archive, "blobs") == blobs_before + 2
    assert row_count(archive, "messages", f"uidvalidity = {old + 1000}") == 14
    assert_archive_matches(imap_client(source_server, "alice"), archive)


def test_dry_run_lists_work_and_writes_nothing(source_server, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "INBOX", 3, size=5000)
    config = source_config(tmp_path, source_server)

    result = run_cli("-c", config, "--json", "pull", "alice", "--dry-run")

    assert result.status == ExitStatus.OK, result.stderr
    summary = json_result(result)
    assert summary["would_fetch"] == 3 and summary["would_fetch_bytes"] > 10000
    notices = [n for n in json_lines(result) if n.get("event") == "notice"]  # on stdout too
    assert any("INBOX: would fetch 3 message(s)" in n.get("text", "") for n in notices)
    assert not (tmp_path / "archive").exists()  # not even an empty manifest


def test_include_exclude_and_vanished_folders(source_server, tmp_path):
    source_server.add_user("alice")
    for folder in ("INBOX", "Lists.python", "Lists.spam", "Trash"):
        seed(source_server, folder, 1)
    config = source_config(tmp_path, source_server,
                           extra={"include": ("INBOX", "Lists.*"), "exclude": ("*.spam",)})
    assert pull(config).status == ExitStatus.OK
    assert set(archive_view(tmp_path / "archive")) == {"INBOX", "Lists.python"}

    source_server.doveadm("mailbox", "delete", "-u", "alice", "Lists.python")
    assert pull(config).status == ExitStatus.OK
    with manifest(tmp_path / "archive") as db:
        gone = {r["name"] for r in db.execute("SELECT name FROM folders WHERE gone_at IS NOT NULL")}
        kept = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert gone == {"Lists.python"} and kept == 2  # its message stays in the archive


@on_each_server
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_sources_are_verified_and_pulled(source_server, tmp_path, security):
    source_server.add_user("alice")
    seed(source_server, "INBOX", 2)
    assert pull(source_config(tmp_path, source_server, security=security)).status == 0
    assert len(archive_view(tmp_path / "archive")["INBOX"]) == 2


def test_refused_login_is_one_line_naming_the_account(source_server, tmp_path, monkeypatch):
    source_server.add_user("alice")
    monkeypatch.setenv(PASSWORD_ENV, "wrong")

    result = pull(source_config(tmp_path, source_server))

    assert result.status == ExitStatus.AUTH
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("migrator: error: alice:") and "login refused" in line
               for line in lines), result.stderr
    assert "Traceback" not in result.stderr and "wrong" not in result.stderr
    with manifest(tmp_path / "archive") as db:
        assert db.execute("SELECT outcome FROM runs").fetchone()[0] == "failed"


def test_unverifiable_tls_and_unreachable_host_are_connection_errors(source_server, tmp_path):
    source_server.add_user("alice")
    no_ca = source_config(tmp_path, source_server, security="tls", extra={"ca_file": None})
    result = pull(no_ca)
    assert result.status == ExitStatus.CONNECTION
    assert "alice" in result.stderr and "certificate verification failed" in result.stderr

    from tests.world.net import free_port

    result = pull(source_config(tmp_path, source_server, port=free_port()))
    assert result.status == ExitStatus.CONNECTION
    assert result.stderr.count("\n") == 1 and "alice" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_message_is_retried_recorded_as_failed_and_fetched_later(
        source_server, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "INBOX", 6)
    directory = source_server.mailbox_path("alice", "INBOX")
    victim = sorted(os.listdir(os.path.join(directory, "cur")))[2]
    path = os.path.join(directory, "cur", victim)
    os.chmod(path, 0)
    config = source_config(tmp_path, source_server)

    result = pull(config)

    assert result.status == ExitStatus.PARTIAL, result.stderr
    assert "INBOX: UID 3:" in result.stderr
    archive = tmp_path / "archive"
    assert sorted(archive_view(archive)["INBOX"]) == [1, 2, 4, 5, 6]
    with manifest(archive) as db:
        failure = db.execute("SELECT * FROM failures").fetchone()
        assert (failure["stage"], failure["folder"], failure["ref"]) == ("pull", "INBOX", "UID 3")
        assert failure["reason"] and failure["resolved_at"] is None
        assert db.execute("SELECT outcome FROM runs").fetchone()[0] == "partial"

    os.chmod(path, 0o600)
    assert pull(config).status == ExitStatus.OK
    assert_archive_matches(imap_client(source_server, "alice"), archive)
    with manifest(archive) as db:
        assert db.execute("SELECT resolved_at FROM failures").fetchone()[0] is not None


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(source_server, tmp_path):
    source_server.add_user("alice")
    seed(source_server, "INBOX", 5)
    config = source_config(tmp_path, source_server)

    bar = run_cli("-c", config, "pull", "alice", tty=True)

    assert bar.status == ExitStatus.OK, bar.stderr
    # the bar shows the task and its total (tqdm may clear it before drawing 5/5)
    assert "pull alice" in bar.stderr and "/5 " in bar.stderr and "msg" in bar.stderr
    seed(source_server, "INBOX", 2, start=10)
    lines = run_cli("-c", config, "pull", "alice")
    assert "pull alice: started" in lines.stderr and "\r" not in lines.stderr
    assert "fetched 2" in lines.stderr
