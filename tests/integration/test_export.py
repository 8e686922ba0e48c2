"""`migrator export` of an archive pulled from the real test-world Dovecot: every format read
back with Python's `mailbox` module and with mutt, byte for byte against the blobs."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil

import pytest

from migrator.archive.blobs import BlobStore
from migrator.archive.db import open_manifest
from migrator.archive.ingest import FetchedMessage, add_messages, ensure_account, ensure_folder
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.export_world import (
    MAILDIR_LETTERS,
    PATHS,
    archived,
    as_mbox_stores,
    body,
    counter,
    exported_bytes,
    maildir_messages,
    mutt_binary,
    mutt_body,
    mutt_pipe_all,
    quote,
    stat_snapshot,
    tree,
)
from tests.integration.imap_pull_world import PASSWORD_ENV, imap_client, manifest, source_config
from tests.world.dovecot import SourceServer
from tests.world.mailstore import SeedMessage

pytestmark = pytest.mark.world
FORMATS = ("maildir", "mbox", "eml")
WHEN = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
TWICE = b"Subject: twice in one folder\r\nMessage-ID: <twice@example.org>\r\n\r\nsame\r\n"
DELETED = b"Subject: flagged deleted\r\n\r\nFrom the start of a line\r\n>From quoted\r\n"


@pytest.fixture(scope="module")
def pulled(tmp_path_factory, certs, corpus):
    """The corpus pulled from Dovecot, with one message gone from the source since, one
    message stored twice in INBOX (and once in Drafts) and one flagged \\Deleted; the server
    is stopped after."""
    work = tmp_path_factory.mktemp("export-archive")
    with pytest.MonkeyPatch.context() as patch, SourceServer(certs) as server:
        patch.setenv(PASSWORD_ENV, "secret")
        server.add_user("alice")
        for folder in sorted({item.folder for item in corpus}):
            server.seed("alice", folder, [i for i in corpus if i.folder == folder])
        server.seed("alice", "INBOX", [SeedMessage(TWICE, ("\\Seen",), WHEN)] * 2
                    + [SeedMessage(DELETED, ("\\Deleted", "\\Seen"), WHEN)])
        server.seed("alice", "Drafts", [SeedMessage(TWICE, ("\\Draft",), WHEN)])
        config = source_config(work, server)
        assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
        client = imap_client(server, "alice")
        client.select_folder("Sent")
        client.delete_messages(client.search("ALL")[:1])
        client.expunge()
        client.logout()
        assert run_cli("-c", config, "pull", "alice").status == ExitStatus.OK
    with manifest(work / "archive") as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE gone_at IS NOT NULL"
                          ).fetchone()[0] == 1
    return config


@pytest.fixture
def config(pulled, tmp_path):
    """A private copy of the pulled archive and a config pointing at it."""
    shutil.copytree(pulled.parent / "archive", tmp_path / "archive")
    text = pulled.read_text(encoding="utf-8").replace(str(pulled.parent), str(tmp_path))
    path = tmp_path / "migrator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def export(config, fmt, dest, *args):
    return run_cli("-c", config, "--json", "export", "alice", "--format", fmt, str(dest), *args)


def summary(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_message_of_the_corpus_is_exported_byte_exact_in_its_folder(config, tmp_path,
                                                                          fmt):
    dest = tmp_path / "export"

    result = export(config, fmt, dest)

    assert result.status == ExitStatus.OK, result.stderr
    view = archived(config.parent / "archive")
    assert set(view) == set(PATHS[fmt])
    for folder, rows in view.items():
        got = exported_bytes(dest, fmt, PATHS[fmt][folder])
        expected = [as_mbox_stores(r.data) if fmt == "mbox" else r.data for r in rows]
        assert counter(got) == counter(expected), f"{folder} differs"
    total = sum(len(rows) for rows in view.values())
    assert summary(result)["exported"] == total
    twice = [r for r in view["INBOX"] if r.data == TWICE]
    assert len(twice) == 2  # the same mail twice in a folder is exported twice
    assert any(r.data == TWICE for r in view["Drafts"])  # and in each folder it is in
    assert any(r.gone for r in view["Sent"])  # gone from the source, exported all the same


def test_maildir_carries_the_flags_in_the_info_suffix_and_the_date_as_mtime(config,
                                                                            tmp_path):
    dest = tmp_path / "export"
    assert export(config, "maildir", dest).status == ExitStatus.OK
    keywords_seen = 0
    for folder, rows in archived(config.parent / "archive").items():
        root = dest / PATHS["maildir"][folder] if PATHS["maildir"][folder] else dest
        keywords_file = root / "dovecot-keywords"  # Dovecot's map: "0 $Forwarded" is letter a
        letter = {name: chr(ord("a") + int(index)) for index, name in (
            line.split(" ", 1) for line in (keywords_file.read_text().splitlines()
                                            if keywords_file.exists() else []))}
        keywords_seen += len(letter)
        expected = counter((r.sha256, "".join(sorted(
            [MAILDIR_LETTERS[f] for f in r.flags if f in MAILDIR_LETTERS]
            + [letter[f] for f in r.flags if not f.startswith("\\")])),
            r.internaldate.timestamp()) for r in rows)
        got = counter((hashlib.sha256(data).hexdigest(), letters, mtime)
                      for data, letters, mtime in maildir_messages(root).values())
        assert got == expected, folder
    assert keywords_seen  # the corpus has $Forwarded and Work
    assert (dest / ".Sent" / "maildirfolder").exists() and (dest / "tmp").is_dir()
    assert not list(dest.rglob("new/*")) and not list(dest.rglob("tmp/*"))


def test_mbox_quotes_from_lines_reversibly_and_dates_the_from_line(config, tmp_path):
    dest = tmp_path / "export"
    assert export(config, "mbox", dest).status == ExitStatus.OK
    raw = (dest / "INBOX").read_bytes()
    assert b"\n>From the start of a line\r\n>>From quoted\r\n" in raw
    assert raw.startswith(b"From MAILER-DAEMON ")
    assert b"\nFrom MAILER-DAEMON Thu Mar  4 05:06:07 2021\nSubject: flagged deleted" in raw
    assert (dest / "Archive").read_bytes() == b""  # Thunderbird's parent of Archive.sbd/


def test_eml_files_have_readable_names(config, tmp_path):
    dest = tmp_path / "export"
    assert export(config, "eml", dest).status == ExitStatus.OK
    names = sorted(p.name for p in (dest / "INBOX").glob("*.eml"))
    twice = [n for n in names if n.startswith("2021-03-04 050607 twice in one folder ")]
    assert len(twice) == 2 and sum(n.endswith("-1.eml") for n in twice) == 1
    assert all(not n.startswith(".") and "/" not in n for n in names)
    assert any("Grüße aus Köln" in p.name for p in dest.rglob("*.eml"))  # RFC 2047 decoded


@pytest.mark.parametrize("fmt", FORMATS)
def test_re_export_adds_nothing_and_rewrites_nothing(config, tmp_path, fmt):
    dest = tmp_path / "export"
    assert export(config, fmt, dest).status == ExitStatus.OK
    before = stat_snapshot(dest)

    again = export(config, fmt, dest)

    assert again.status == ExitStatus.OK, again.stderr
    assert "exported" not in summary(again) and summary(again)["already_exported"] > 100
    assert stat_snapshot(dest) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_re_export_adds_only_new_mail_and_leaves_the_rest_alone(config, tmp_path, fmt):
    dest = tmp_path / "export"
    assert export(config, fmt, dest).status == ExitStatus.OK
    before = stat_snapshot(dest)
    archive = config.parent / "archive"
    new = [b"Subject: new %d\r\nMessage-ID: <new%d@example.org>\r\n\r\nnew\r\n" % (i, i)
           for i in range(3)]
    _ingest(archive, "Sent", new)

    again = export(config, fmt, dest)

    assert again.status == ExitStatus.OK, again.stderr
    assert summary(again)["exported"] == 3
    after = stat_snapshot(dest)
    changed = {path for path in before if after.get(path) != before[path]}
    assert changed <= ({"Sent"} if fmt == "mbox" else set())  # an mbox only grows
    got = exported_bytes(dest, fmt, PATHS[fmt]["Sent"])
    assert counter(got) == counter(
        [r.data for r in archived(archive)["Sent"]])


def _ingest(archive, folder, messages):
    db = open_manifest(f"sqlite:///{archive / 'manifest.sqlite'}")
    try:
        with manifest(archive) as plain:
            folder_id = plain.execute("SELECT id FROM folders WHERE name = ?",
                                      (folder,)).fetchone()[0]
        add_messages(db, BlobStore(archive), folder_id, [
            FetchedMessage(data, uid=10_000 + i, uidvalidity=1,
                           internaldate=WHEN.isoformat(), flags=("\\Seen",))
            for i, data in enumerate(messages)])
    finally:
        db.close()


def test_a_message_the_user_deleted_from_the_export_does_not_come_back(config, tmp_path):
    dest = tmp_path / "export"
    assert export(config, "maildir", dest).status == ExitStatus.OK
    victim = sorted((dest / ".Sent" / "cur").iterdir())[0]
    victim.unlink()

    again = export(config, "maildir", dest)

    assert again.status == ExitStatus.OK and "exported" not in summary(again)
    assert not victim.exists()


def test_an_mbox_changed_by_a_mail_client_is_left_alone_and_reported(config, tmp_path):
    dest = tmp_path / "export"
    assert export(config, "mbox", dest).status == ExitStatus.OK
    _ingest(config.parent / "archive", "Sent", [b"Subject: later\r\n\r\nlater\r\n"])
    _ingest(config.parent / "archive", "Drafts", [b"Subject: later draft\r\n\r\nlater\r\n"])
    sent = dest / "Sent"
    sent.write_bytes(sent.read_bytes()[:-200])  # as if a client had rewritten it
    edited = sent.read_bytes()

    again = export(config, "mbox", dest)

    assert again.status == ExitStatus.PARTIAL
    assert f"failed: alice: Sent: {sent} was changed since the last export" in again.stderr
    assert sent.read_bytes() == edited  # not cut, not appended to
    assert summary(again)["exported"] == 1  # the other folder went on


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_mutt_opens_every_folder_and_sees_every_message(config, tmp_path, fmt):
    if mutt_binary() is None:
        pytest.skip("mutt is not installed (Debian package mutt)")
    dest = tmp_path / "export"
    assert export(config, fmt, dest).status == ExitStatus.OK
    for n, (folder, rows) in enumerate(archived(config.parent / "archive").items()):
        path = PATHS[fmt][folder]
        piped = mutt_pipe_all(dest / path if path else dest, tmp_path / f"piped{n}",
                              tmp_path)
        expected = [body(quote(as_mbox_stores(r.data)) if fmt == "mbox" else r.data)
                    for r in rows]
        bodies = counter(mutt_body(p) for p in piped)
        assert len(piped) == len(rows), folder  # mutt found every message, no more
        well_formed = counter(b for b in expected if b is not None)
        assert len(well_formed) > len(rows) // 2
        assert bodies & well_formed == well_formed, folder  # each body byte for byte


def test_folder_and_date_filters_choose_what_is_exported(config, tmp_path):
    dest = tmp_path / "export"
    result = export(config, "eml", dest, "--folder", "INBOX", "--folder", "Reisen.*",
                    "--since", "2021-03-04", "--before", "2021-03-05")
    assert result.status == ExitStatus.OK, result.stderr
    assert sorted(p.name for p in (dest / "INBOX").iterdir()) == sorted(
        p.name for p in (dest / "INBOX").glob("2021-03-04 *.eml"))
    assert len(list((dest / "INBOX").iterdir())) == 3
    assert not (dest / "Sent").exists() and (dest / "Reisen" / "Überblick").is_dir()


def test_what_cannot_be_exported_is_one_line_with_its_exit_code(config, tmp_path):
    dest = tmp_path / "export"
    unknown = export(config, "eml", dest, "--folder", "Nope")
    assert unknown.status == ExitStatus.USAGE
    assert unknown.stderr == "migrator: error: no archived folder of alice matches --folder Nope\n"
    assert export(config, "eml", dest, "--since", "yesterday").status == ExitStatus.USAGE
    stranger = run_cli("-c", config, "export", "carol", "--format", "eml", str(dest))
    assert stranger.status == ExitStatus.USAGE and "carol has nothing in the archive" in (
        stranger.stderr)
    assert not dest.exists()  # nothing was created for a command that could not run
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    foreign = export(config, "eml", tmp_path / "full")
    assert foreign.status == ExitStatus.USAGE and "is not empty" in foreign.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["notes.txt"]
    assert export(config, "eml", dest).status == ExitStatus.OK
    other = export(config, "mbox", dest)
    assert other.status == ExitStatus.USAGE
    assert f"{dest} holds an eml export of account alice" in other.stderr


def test_a_damaged_blob_is_named_and_the_rest_exported(config, tmp_path):
    dest = tmp_path / "export"
    archive = config.parent / "archive"
    victim = archived(archive)["Drafts"][0]
    (archive / "objects" / victim.sha256[:2] / f"{victim.sha256[2:]}.eml").write_bytes(b"x")

    result = export(config, "maildir", dest)

    assert result.status == ExitStatus.PARTIAL
    assert f"Drafts: blob {victim.sha256} no longer matches its SHA-256" in result.stderr
    total = sum(len(rows) for rows in archived(archive).values())
    assert summary(result)["exported"] == total - 1
    assert tree(dest)  # everything else is there


def test_pop3_mail_without_internaldate_is_dated_by_its_headers(config, tmp_path):
    archive = config.parent / "archive"
    db = open_manifest(f"sqlite:///{archive / 'manifest.sqlite'}")
    dated = [b"Received: from a by b; Mon, 04 Mar 2024 10:00:00 +0000\r\nSubject: in\r\n\r\n1\r\n",
             b"Date: Sun, 03 Mar 2024 23:59:59 +0000\r\nSubject: before\r\n\r\n2\r\n",
             b"Subject: no date at all\r\n\r\n3\r\n"]
    try:
        with db.session() as session:
            inbox = ensure_folder(session, ensure_account(session, "bob", "pop3"), "INBOX").id
        add_messages(db, BlobStore(archive), inbox,
                     [FetchedMessage(data, uidl=f"u{i}") for i, data in enumerate(dated)])
    finally:
        db.close()

    some = run_cli("-c", config, "export", "bob", "--format", "eml", str(tmp_path / "some"),
                   "--since", "2024-03-04")
    every = run_cli("-c", config, "export", "bob", "--format", "maildir", str(tmp_path / "all"))

    assert some.status == every.status == ExitStatus.OK, some.stderr + every.stderr
    assert [p.name for p in (tmp_path / "some" / "INBOX").iterdir()] == [
        f"2024-03-04 100000 in {hashlib.sha256(dated[0]).hexdigest()[:12]}.eml"]
    assert counter(exported_bytes(tmp_path / "all", "maildir", "")) == counter(dated)
