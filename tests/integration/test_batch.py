"""Batch migration and unattended backups against the test world (issue: batch & cron).

Twenty mailboxes, mixed IMAP and POP3 sources, into the Office 365 look-alike: one with a
wrong password and one pointing at a closed port are reported, the other eighteen complete
and verify; re-running after the fix completes the missing one and moves only new mail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from migrator.cli.progress import human_bytes
from tests.cli_runner import run_cli
from tests.integration.push_world import SECRET, SECRET_ENV, leaked
from tests.world import manifests
from tests.world.configs import Batch, Config, Endpoint, OAuth
from tests.world.mailstore import SeedMessage

PASSWORD = "batch-Src-Pw-5510"
PASSWORD_ENV = "MIGRATOR_TEST_BATCH_PW"
WRONG_ENV = "MIGRATOR_TEST_BATCH_WRONG"
pytestmark = pytest.mark.manifest_databases

HEADER = "account,source_kind,source_port,source_user,source_secret,target_user\n"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mail(user: str, n: int) -> SeedMessage:
    raw = (f"From: someone@example.org\r\nTo: {user}@old.example\r\n"
           f"Subject: message {n} for {user}\r\nMessage-ID: <{user}.{n}@old.example>\r\n"
           f"\r\nbody {n}\r\n").encode()
    return SeedMessage(raw, ("\\Seen",) if n % 2 else (), 1_700_000_000 + n * 3600)


def source_defaults(source_server) -> Endpoint:
    return Endpoint("imap", port=source_server.imap_port, security="plain", timeout=20)


def base_config(tmp_path: Path, source_server, office365, oauth) -> Path:
    source = source_defaults(source_server)
    target = Endpoint("office365", port=office365.imaps_port, ca_file=office365.ca_cert,
                      timeout=20, connections=2, oauth=OAuth(
                          oauth.authority, oauth.ca_cert, client_id="batch-app",
                          client_secret=f"env:{SECRET_ENV}"))
    batch = Batch(source, target, parallel=4, report_dir=tmp_path / "reports")
    return Config(tmp_path / "archive", batch=batch).write(tmp_path / "base.toml")


@pytest.fixture
def world(tmp_path, source_server, office365_server, oauth_service, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv(WRONG_ENV, "not-the-password")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    oauth_service.add_client("batch-app", SECRET)
    return tmp_path, source_server, office365_server, oauth_service


def make_batch(world, count: int, *, wrong: str | None = None, closed: str | None = None
               ) -> tuple[Path, Path, dict[str, int]]:
    tmp_path, source, office365, oauth = world
    lines, expected = [], {}
    for index in range(1, count + 1):
        user = f"user{index:02d}"
        kind = "pop3" if index % 4 == 0 else "imap"
        source.add_user(user, PASSWORD)
        messages = [mail(user, n) for n in range(1, 3 + index % 4)]
        source.seed(user, "INBOX", messages)
        if kind == "imap" and index % 3 == 0:
            source.create_folder(user, "Projects")
            source.seed(user, "Projects", [mail(user, 100)])
            messages.append(mail(user, 100))
        mailbox = f"{user}@contoso.test"
        oauth.grant("batch-app", mailbox)
        office365.add_user(mailbox)
        port = source.pop3_port if kind == "pop3" else source.imap_port
        secret = f"env:{WRONG_ENV}" if user == wrong else f"env:{PASSWORD_ENV}"
        if user == closed:
            port = closed_port()
        lines.append(f"{user},{kind},{port},{user},{secret},{mailbox}\n")
        expected[user] = len(messages)
    csv_path = tmp_path / "users.csv"
    csv_path.write_text(HEADER + "".join(lines))
    return base_config(tmp_path, source, office365, oauth), csv_path, expected


def at_target(office365, user: str) -> Counter[bytes]:
    mailbox = f"{user}@contoso.test"
    return Counter(message.raw for folder in office365.folders(mailbox)
                   for message in office365.list_messages(mailbox, folder))


def latest_report(tmp_path: Path) -> dict:
    reports = sorted((tmp_path / "reports").glob("batch-*.json"))
    return json.loads(reports[-1].read_text())


@pytest.mark.slow
def test_batch_of_twenty_isolates_failures_and_resumes_with_delta(world, tmp_path) -> None:
    _, source, office365, _ = world
    base, users_csv, expected = make_batch(world, 20, wrong="user07", closed="user11")

    first = run_cli("-c", base, "batch", "run", users_csv)
    assert first.status == 4, first.stdout + first.stderr
    states = {row["account"]: row for row in latest_report(tmp_path)["mailboxes"]}
    assert sorted(name for name, row in states.items() if row["state"] != "complete") \
        == ["user07", "user11"]
    assert "login refused" in states["user07"]["error"]
    assert "cannot connect" in states["user11"]["error"]
    for user, count in expected.items():
        if user in ("user07", "user11"):
            assert not at_target(office365, user)
            continue
        assert states[user]["verified"] == "yes", states[user]
        assert sum(at_target(office365, user).values()) == count, user
    assert "2 need attention" in first.stdout

    # fix the password, point the closed row nowhere new, add new mail to two mailboxes
    os.environ[WRONG_ENV] = PASSWORD
    source.seed("user01", "INBOX", [mail("user01", 50)])
    source.seed("user04", "INBOX", [mail("user04", 50)])  # a POP3 mailbox
    second = run_cli("-c", base, "batch", "run", users_csv)
    assert second.status == 4  # user11's port is still closed
    rows = {row["account"]: row for row in latest_report(tmp_path)["mailboxes"]}
    assert rows["user07"]["state"] == "complete" and rows["user07"]["verified"] == "yes"
    assert rows["user07"]["pushed"] == expected["user07"]
    assert rows["user01"]["archived"] == 1 and rows["user01"]["pushed"] == 1
    assert rows["user04"]["archived"] == 1 and rows["user04"]["pushed"] == 1
    for user in ("user02", "user03", "user05", "user20"):
        assert rows[user]["archived"] == 0 and rows[user]["pushed"] == 0, rows[user]
    for user, count in expected.items():
        if user != "user11":
            extra = 1 if user in ("user01", "user04") else 0
            assert max(at_target(office365, user).values()) == 1  # nothing twice
            assert sum(at_target(office365, user).values()) == count + extra, user

    status = run_cli("-c", base, "--json", "batch", "status", users_csv)
    table = {row["account"]: row for row in json.loads(status.stdout)}
    assert table["user07"]["state"] == "complete"
    assert table["user11"]["state"] == "failed"
    assert table["user01"]["archived"] == expected["user01"] + 1

    texts = [p.read_bytes() for p in (tmp_path / "reports").iterdir()]
    texts += [first.stdout, first.stderr, second.stdout, second.stderr, status.stdout]
    assert leaked([PASSWORD, SECRET], *texts) == []


@pytest.mark.slow
def test_batch_killed_mid_run_then_rerun_has_no_duplicates(world, tmp_path) -> None:
    _, _, office365, _ = world
    base, users_csv, expected = make_batch(world, 6)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "migrator", "-q", "-c", str(base), "batch",
                             "run", str(users_csv), "--parallel", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    archive = tmp_path / "archive"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if manifests.exists(archive) and _pushes_done(archive) >= 3:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rerun = run_cli("-c", base, "batch", "run", users_csv)
    assert rerun.status == 0, rerun.stdout + rerun.stderr
    for user, count in expected.items():
        got = at_target(office365, user)
        assert sum(got.values()) == count and max(got.values()) == 1, user


def _pushes_done(archive: Path) -> int:
    try:
        with manifests.connect(archive) as db:
            return int(db.execute("select count(*) from pushes where state = 'done'")
                       .fetchone()[0])
    except manifests.errors():  # no table yet, or the database is busy
        return 0


def archived_sizes(tmp_path: Path) -> dict[str, int]:
    """Bytes of each mailbox's messages, as the manifest records them (not the report)."""
    with manifests.connect(tmp_path / "archive") as db:
        sizes = dict(db.execute(
            "SELECT accounts.name, SUM(messages.size) FROM messages "
            "JOIN folders ON messages.folder_id = folders.id "
            "JOIN accounts ON folders.account_id = accounts.id GROUP BY accounts.name"))
    return sizes


def test_report_bytes_are_archived_and_pushed_whatever_the_protocol(world, tmp_path) -> None:
    base, users_csv, _ = make_batch(world, 4)  # user04 is a POP3 mailbox, the others IMAP
    batch = Batch(source_defaults(world[1]), parallel=4, report_dir=tmp_path / "pre" / "reports")
    archive_only = Config(tmp_path / "archive", batch=batch).write(tmp_path / "pre.toml")

    staged = run_cli("-c", archive_only, "batch", "run", users_csv)  # pre-stage: archive only
    assert staged.status == 0, staged.stdout + staged.stderr
    sizes = archived_sizes(tmp_path)
    rows = {row["account"]: row for row in latest_report(tmp_path / "pre")["mailboxes"]}
    assert {name: row["archived_bytes"] for name, row in rows.items()} == sizes
    assert {row["pushed_bytes"] for row in rows.values()} == {0}
    assert f"{human_bytes(sum(sizes.values()))} archived, 0 B pushed" in staged.stdout

    cut_over = run_cli("-c", base, "batch", "run", users_csv)  # archive is complete: push
    assert cut_over.status == 0, cut_over.stdout + cut_over.stderr
    rows = {row["account"]: row for row in latest_report(tmp_path)["mailboxes"]}
    assert {name: row["pushed_bytes"] for name, row in rows.items()} == sizes
    assert {row["archived_bytes"] for row in rows.values()} == {0}
    assert f"0 B archived, {human_bytes(sum(sizes.values()))} pushed" in cut_over.stdout


TWINS = {"twin1": "imap", "twin2": "imap", "twin3": "pop3"}
ROUNDS = 5  # each round brings new identical messages: the blob rows are new each time
PER_ROUND = 40


def shared_mail(round_: int, n: int) -> SeedMessage:
    """The same bytes in every twin mailbox."""
    raw = (f"From: list@example.org\r\nTo: team@old.example\r\nSubject: round {round_} "
           f"news {n}\r\nMessage-ID: <r{round_}.n{n}@list.example>\r\n\r\n"
           f"{'shared body ' * 40}\r\n").encode()
    return SeedMessage(raw, (), 1_700_000_000 + n * 60)


@pytest.mark.slow
def test_mailboxes_with_identical_messages_pulled_at_once_never_collide(
        tmp_path, source_server, monkeypatch) -> None:
    """Issue 11: two mailboxes holding byte-identical messages, pulled in parallel, both
    insert the same blob rows: neither may fail (it was `UNIQUE constraint failed:
    blobs.sha256`, with a traceback and the SQL parameters in the report)."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    batch = Batch(source_defaults(source_server), report_dir=tmp_path / "reports")
    base = Config(tmp_path / "archive", batch=batch).write(tmp_path / "base.toml")
    lines = []
    for user, kind in TWINS.items():
        source_server.add_user(user, PASSWORD)
        port = source_server.pop3_port if kind == "pop3" else source_server.imap_port
        lines.append(f"{user},{kind},{port},{user},env:{PASSWORD_ENV}\n")
    users_csv = tmp_path / "twins.csv"
    users_csv.write_text("account,source_kind,source_port,source_user,source_secret\n"
                         + "".join(lines))
    for round_ in range(ROUNDS):
        messages = [shared_mail(round_, n) for n in range(PER_ROUND)]
        for user in TWINS:
            source_server.seed(user, "INBOX", messages)
        result = run_cli("-c", base, "batch", "run", users_csv, "--parallel", str(len(TWINS)))
        report = (tmp_path / "reports").glob("batch-*.csv")
        texts = [result.stdout, result.stderr, *(path.read_text() for path in report)]
        assert not any("IntegrityError" in text or "[parameters:" in text for text in texts)
        assert result.status == 0, result.stdout + result.stderr
        rows = {row["account"]: row for row in latest_report(tmp_path)["mailboxes"]}
        assert all(rows[user]["archived"] == PER_ROUND for user in TWINS), rows
    with manifests.connect(tmp_path / "archive") as db:
        blobs = db.execute("select count(*) from blobs").fetchone()[0]
        messages = db.execute("select count(*) from messages").fetchone()[0]
    assert (blobs, messages) == (ROUNDS * PER_ROUND, len(TWINS) * ROUNDS * PER_ROUND)
