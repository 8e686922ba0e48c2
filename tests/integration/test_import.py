"""Import (`kind = "mbox" | "maildir" | "eml"`): round trips through `migrator export`, a
Maildir written by a real Dovecot against an IMAP pull of the same mailbox, a real public
mbox, re-runs that add nothing, files that grow or lose messages, and a push of imported mail
to the Exchange look-alike."""

from __future__ import annotations

import datetime
import json
import mailbox
import shutil
from collections import Counter
from pathlib import Path

import pytest

from migrator.engine.export.mbox import entry
from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.export_world import mutt_binary, mutt_pipe_all
from tests.integration.imap_pull_world import PASSWORD_ENV, imap_client, manifest, source_config
from tests.integration.import_world import (
    blob_of,
    contents,
    file_source,
    import_config,
    rows,
    sha_of,
)
from tests.integration.push_world import MAILBOX, target_block, target_count
from tests.world.dovecot import SourceServer
from tests.world.mailstore import as_imap_bytes

pytestmark = pytest.mark.world
FORMATS = ("maildir", "mbox", "eml")
SAMPLE = Path(__file__).parents[1] / "data" / "mbox" / "netscape-jwz.mbox"
WHEN = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
EXTRA = [  # oddities the generated corpus lacks, in INBOX
    (b"Subject: from lines\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\nFrom \r\n",
     ("\\Seen", "\\Answered", "\\Draft", "$Label1")),
    (b"Subject: twice\r\nMessage-ID: <twice@example.org>\r\n\r\nsame\r\n", ("\\Flagged",)),
    (b"Subject: twice\r\nMessage-ID: <twice@example.org>\r\n\r\nsame\r\n", ("\\Flagged",)),
    (b"Subject: no final line break\r\n\r\nFrom here to there", ("\\Flagged", "Work")),
    (b"Status: RO\r\nX-Status: AF\r\nSubject: headers that say more\r\n\r\nFrom x\r\n", ()),
]
SYSTEM = {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted"}


def _seed_over_imap(server, corpus) -> None:
    """The corpus stored by Dovecot itself (APPEND), so its Maildir is Dovecot's own."""
    client = imap_client(server, "alice")
    try:
        for folder in sorted({item.folder for item in corpus} - {"INBOX"}):
            client.create_folder(folder)
        items = [(item.folder, item.raw, item.flags, item.internaldate) for item in corpus]
        items += [("INBOX", raw, flags, WHEN) for raw, flags in EXTRA]
        for folder, raw, flags, when in items:
            client.append(folder, raw, flags, when)
    finally:
        client.logout()


@pytest.fixture(scope="module")
def world(tmp_path_factory, certs, corpus):
    """(work dir, config of the IMAP pull `alice`, copy of Dovecot's Maildir of alice)."""
    work = tmp_path_factory.mktemp("import")
    with pytest.MonkeyPatch.context() as patch, SourceServer(certs) as server:
        patch.setenv(PASSWORD_ENV, "secret")
        server.add_user("alice", "secret")
        _seed_over_imap(server, corpus)
        config = source_config(work, server)
        pulled = run_cli("-c", config, "pull", "alice")
        assert pulled.status == ExitStatus.OK, pulled.stderr
        maildir = work / "dovecot-maildir"
        shutil.copytree(server.mailbox_path("alice", "INBOX"), maildir)
    return work, config, maildir


def _names(view: dict) -> dict:
    """Folder names of the IMAP pull (server separator ".") as a file source names them."""
    return {name.replace(".", "/"): value for name, value in view.items()}


def _pull(config, account: str, *extra: str) -> dict:
    result = run_cli("-c", config, "--json", "pull", account, *extra)
    assert result.status == ExitStatus.OK, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory):
    """{format: export directory} of the pulled archive."""
    _work, config, _ = world
    dests = {}
    for fmt in FORMATS:
        dests[fmt] = tmp_path_factory.mktemp("exported") / fmt
        done = run_cli("-c", config, "export", "alice", "--format", fmt, str(dests[fmt]))
        assert done.status == ExitStatus.OK, done.stderr
    return dests


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_gives_the_same_messages_and_adding_again_nothing(
        world, exported, fmt, tmp_path):
    work, _, _ = world
    archive = work / "archive"
    config = import_config(tmp_path, {"back": file_source(fmt, exported[fmt])}, archive)

    first = _pull(config, "back")
    again = _pull(config, "back")

    original = _names(contents(archive, "alice"))
    keywords = {f for found in original.values() for _, flags, _ in found for f in flags
                if not f.startswith("\\")}
    # what each format can hold: Maildir every flag (keywords in dovecot-keywords), mbox
    # every flag too (in the export's journal, not in the messages), .eml none
    kept = {"maildir": SYSTEM | keywords, "mbox": SYSTEM | keywords, "eml": set()}[fmt]
    expected = {}
    for folder, found in original.items():
        expected[folder] = Counter()
        for (sha, flags, when), count in found.items():
            data = blob_of(archive, sha)
            if fmt == "mbox" and not data.endswith(b"\n"):  # the one byte mbox must add
                sha = sha_of(data + b"\n")
            expected[folder][(sha, flags & kept, when)] += count
    imported = contents(archive, "back")
    for folder, wanted in expected.items():
        got = imported.get(folder, Counter())
        assert got == wanted, (folder, got - wanted, wanted - got)
    assert imported.keys() == expected.keys()
    assert first["fetched"] == sum(sum(c.values()) for c in original.values())
    assert again.get("fetched", 0) == 0 and again["already_archived"] == first["fetched"]


def test_the_mbox_round_trip_keeps_from_lines_in_bodies(world, exported, tmp_path):
    work, _, _ = world
    archive = work / "archive"
    config = import_config(tmp_path, {"fromlines": file_source("mbox", exported["mbox"])},
                           archive)
    _pull(config, "fromlines")
    # each with all its flags (from the export's journal), none from its Status headers
    wanted = Counter((sha_of(raw), frozenset(flags)) for raw, flags in EXTRA[:3] + EXTRA[4:])
    found = Counter((sha, flags) for sha, flags, *_ in rows(archive, "fromlines")["INBOX"])
    assert found & wanted == wanted, wanted - found
    # quoted in the file (mboxrd), unquoted again in the archive
    assert (b"\r\n\r\n>From the start\r\n>>From quoted\r\n>>>From twice\r\n>From \r\n"
            in (exported["mbox"] / "INBOX").read_bytes())


def test_dovecots_own_maildir_matches_an_imap_pull_of_it(world, tmp_path):
    work, _, maildir = world
    archive = tmp_path / "archive"
    config = import_config(tmp_path, {"disk": file_source("maildir", maildir)}, archive)
    _pull(config, "disk")

    from_disk = {}
    for folder, found in rows(archive, "disk").items():
        # Dovecot stores APPENDed mail with LF line ends and serves it with CRLF
        from_disk[folder] = Counter((sha_of(as_imap_bytes(blob_of(archive, sha))), flags, when)
                                    for sha, flags, when, _ in found)
    over_imap = _names(contents(work / "archive", "alice"))
    assert from_disk == over_imap


def test_a_grown_mbox_adds_only_the_new_messages_and_a_removed_one_is_gone(tmp_path):
    box = tmp_path / "old.mbox"
    first = [b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n) for n in range(5)]
    box.write_bytes(b"".join(entry(m, WHEN)[0] for m in first))
    config = import_config(tmp_path, {"old": file_source("mbox", box)})
    assert _pull(config, "old")["fetched"] == 5

    with box.open("ab") as handle:
        handle.write(entry(b"Subject: new\r\n\r\nFrom me\r\n", WHEN)[0])
    grown = _pull(config, "old")
    assert grown["fetched"] == 1 and grown["already_archived"] == 5

    box.write_bytes(b"".join(entry(m, WHEN)[0] for m in first[1:]))
    shrunk = _pull(config, "old")
    assert shrunk.get("fetched", 0) == 0 and shrunk["gone"] == 2
    assert {sha for sha, *_ in rows(tmp_path / "archive", "old", gone=True)["INBOX"]} == {
        sha_of(first[0]), sha_of(b"Subject: new\r\n\r\nFrom me\r\n")}


def test_a_maildir_flag_change_updates_the_row_and_a_deleted_file_is_gone(world, tmp_path):
    _, _, maildir = world
    copy = tmp_path / "maildir"
    shutil.copytree(maildir / ".Sent", copy)
    config = import_config(tmp_path, {"m": file_source("maildir", copy)})
    fetched = _pull(config, "m")["fetched"]
    files = sorted((copy / "cur").iterdir())
    unflagged = next(p for p in files if "F" not in p.name.partition(":2,")[2])
    unflagged.rename(unflagged.with_name(unflagged.name + "F"))
    files[-1 if files[-1] != unflagged else 0].unlink()

    again = _pull(config, "m")

    assert again.get("fetched", 0) == 0
    assert again["flags_changed"] == 1 and again["gone"] == 1
    assert len(rows(tmp_path / "archive", "m")["INBOX"]) == fetched - 1
    key = unflagged.name.partition(":")[0]
    assert any("\\Flagged" in flags for _, flags, _, k in rows(tmp_path / "archive", "m")["INBOX"]
               if k == key)


def test_the_sample_mbox_is_imported_whole_once(tmp_path):
    config = import_config(tmp_path, {"jwz": file_source("mbox", SAMPLE)})
    dry = run_cli("-c", config, "--json", "pull", "jwz", "--dry-run")
    assert dry.status == ExitStatus.OK, dry.stderr
    assert json.loads(dry.stdout.strip().splitlines()[-1])["would_fetch"] == 29
    assert not (tmp_path / "archive" / "manifest.sqlite").exists()

    assert _pull(config, "jwz")["fetched"] == 29
    assert _pull(config, "jwz").get("fetched", 0) == 0
    found = rows(tmp_path / "archive", "jwz")["INBOX"]
    assert len(found) == len({key for *_, key in found}) == 29
    assert sum("\\Flagged" in flags for _, flags, _, _ in found) == 7


def test_config_check_reports_a_missing_path(tmp_path):
    config = import_config(tmp_path, {"gone": file_source("maildir", tmp_path / "nowhere")})

    checked = run_cli("config", "check", config)
    pulled = run_cli("-c", config, "pull", "gone")

    assert checked.status == ExitStatus.OK  # the path may be on a disk not mounted yet
    assert pulled.status == ExitStatus.CONFIG
    assert "warning: " in checked.stderr and "accounts.gone.source.path:" in checked.stderr
    assert "does not exist" in checked.stderr
    assert "gone: " in pulled.stderr and "no such Maildir directory" in pulled.stderr
    assert "Traceback" not in checked.stderr + pulled.stderr


@pytest.mark.usefixtures("push_secrets")
def test_imported_mail_is_pushed_and_migrated_to_exchange(o365, oauth_service, certs, tmp_path):
    target = target_block(o365.imaps_port, certs.ca_cert, oauth_service)
    config = import_config(tmp_path, {"jwz": file_source("mbox", SAMPLE)}, target=target)
    assert _pull(config, "jwz")["fetched"] == 29

    pushed = run_cli("-c", config, "push", "jwz")

    assert pushed.status == ExitStatus.OK, pushed.stderr
    assert target_count(o365, MAILBOX) == 29
    migrated = run_cli("-c", config, "migrate", "jwz")  # pull, push and verify: all done
    assert migrated.status == ExitStatus.OK, migrated.stderr
    assert "pulled 0, pushed 0" in migrated.stdout
    assert target_count(o365, MAILBOX) == 29


def _thunderbird_box(path: Path, read: set[int]) -> None:
    """Five messages as Thunderbird keeps them, `read` ones marked read (0001) in place."""
    path.write_bytes(b"".join(entry(
        b"X-Mozilla-Status: %04d\r\nX-Mozilla-Status2: 00000000\r\nMessage-ID: <%d@tb>\r\n"
        b"Subject: message %d\r\n\r\nbody %d\r\n" % (n in read, n, n, n), WHEN)[0]
        for n in range(5)))


@pytest.mark.usefixtures("push_secrets")
def test_messages_read_in_thunderbird_since_the_last_import_are_not_imported_or_pushed_again(
        o365, oauth_service, certs, tmp_path):
    box = tmp_path / "Inbox"
    _thunderbird_box(box, read=set())
    target = target_block(o365.imaps_port, certs.ca_cert, oauth_service)
    config = import_config(tmp_path, {"tb": file_source("mbox", box)}, target=target)
    assert _pull(config, "tb")["fetched"] == 5
    assert run_cli("-c", config, "push", "tb").status == ExitStatus.OK
    _thunderbird_box(box, read={1, 3})  # two messages read: their status headers rewritten

    again = _pull(config, "tb")
    migrated = run_cli("-c", config, "--json", "migrate", "tb")

    assert again.get("fetched", 0) == 0 and again["flags_changed"] == 2
    assert "gone" not in again
    assert migrated.status == ExitStatus.OK, migrated.stderr
    assert target_count(o365, MAILBOX) == 5  # without keys that ignore those headers: 7
    seen = [("\\Seen" in flags) for _, flags, _, _ in rows(tmp_path / "archive", "tb")["INBOX"]]
    assert seen == [False, True, False, True, False]


def test_an_archive_imported_with_whole_message_keys_is_rekeyed_not_imported_again(tmp_path):
    """Before keys ignored the flag headers they hashed the whole message: such rows are
    found by their former key and take the new one."""
    box = tmp_path / "Inbox"
    _thunderbird_box(box, read={2})
    config = import_config(tmp_path, {"tb": file_source("mbox", box)})
    assert _pull(config, "tb")["fetched"] == 5
    with manifest(tmp_path / "archive") as db:  # the keys an earlier migrator recorded
        db.execute("UPDATE messages SET uidl = sha256")
        db.commit()

    again = _pull(config, "tb")

    assert again.get("fetched", 0) == 0 and "gone" not in again
    assert again["already_archived"] == 5
    found = rows(tmp_path / "archive", "tb")["INBOX"]
    assert len(found) == 5 and all(key != sha for sha, _, _, key in found)
    assert _pull(config, "tb")["already_archived"] == 5


def test_backup_and_repair_work_on_a_file_source(tmp_path):
    config = import_config(tmp_path, {"jwz": file_source("mbox", SAMPLE)})
    backup = run_cli("-c", config, "--json", "backup", "--all")
    assert backup.status == ExitStatus.OK, backup.stderr
    assert json.loads(backup.stdout)["accounts"][0]["fetched"] == 29
    archive = tmp_path / "archive"
    damaged = [rows(archive, "jwz")["INBOX"][n][0] for n in (0, 5)]
    (archive / "objects" / damaged[0][:2] / f"{damaged[0][2:]}.eml").unlink()
    (archive / "objects" / damaged[1][:2] / f"{damaged[1][2:]}.eml").write_bytes(b"rot")

    repaired = run_cli("-c", config, "--json", "repair", "jwz")

    assert repaired.status == ExitStatus.OK, repaired.stderr
    assert json.loads(repaired.stdout.strip().splitlines()[-1])["repaired"] == 2
    assert sha_of(blob_of(archive, damaged[0])) == damaged[0]
    assert sha_of(blob_of(archive, damaged[1])) == damaged[1]


@pytest.mark.skipif(mutt_binary() is None, reason="mutt is not installed")
def test_the_sample_mbox_counts_as_mailbox_and_grep_say_and_mutt_differs_as_documented(
        tmp_path):
    """Python's mailbox and `grep -c '^From '` split at every `From ` line (29), as the import
    does; mutt only at one that carries a date, merging Netscape's 4 dateless `From - `."""
    text = SAMPLE.read_bytes()
    from_lines = [line for line in text.split(b"\n") if line.startswith(b"From ")]
    dated = [line for line in from_lines if line.strip() != b"From -"]
    config = import_config(tmp_path, {"jwz": file_source("mbox", SAMPLE)})

    imported = _pull(config, "jwz")["fetched"]
    piped = mutt_pipe_all(SAMPLE, tmp_path / "piped", tmp_path)

    assert imported == len(mailbox.mbox(SAMPLE)) == len(from_lines) == 29
    assert len(piped) == len(dated) == 25
