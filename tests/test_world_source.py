"""Self-tests of the source Dovecot: protocols, TLS, POP3 flag safety, seeding."""
import datetime
import poplib
import ssl

import imapclient
import pytest

from tests.world.dovecot import SourceServer
from tests.world.mailstore import SeedMessage, as_imap_bytes

UTC = datetime.UTC
pytestmark = pytest.mark.world


def _ctx(certs):
    return ssl.create_default_context(cafile=certs.ca_cert)


def _imap(server, certs, mode, closing):
    if mode == "imaps":
        return closing(imapclient.IMAPClient(server.host, server.imaps_port,
                                             ssl_context=_ctx(certs)))
    client = closing(imapclient.IMAPClient(server.host, server.imap_port, ssl=False))
    if mode == "starttls":
        client.starttls(_ctx(certs))
    return client


@pytest.mark.parametrize("mode", ["imap", "imaps", "starttls"])
def test_login_append_fetch_round_trip(source_server, certs, mode, closing):
    source_server.add_user("alice", "pw1")
    client = _imap(source_server, certs, mode, closing)
    client.normalise_times = False
    client.login("alice", "pw1")
    when = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    message = b"Subject: round trip\r\nFrom: a@example.org\r\n\r\nhello\r\n"
    client.append("INBOX", message, flags=["\\Flagged", "Work"], msg_time=when)
    client.select_folder("INBOX")
    data = client.fetch([1], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])[1]
    assert data[b"BODY[]"] == message
    assert set(data[b"FLAGS"]) - {b"\\Recent"} == {b"\\Flagged", b"Work"}
    assert data[b"INTERNALDATE"] == when
    client.logout()


def test_tls_is_verified_against_the_test_ca(source_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient(source_server.host, source_server.imaps_port,
                              ssl_context=ssl.create_default_context())


def test_wrong_password_refused_and_users_added_at_runtime(source_server, certs, closing):
    source_server.add_user("bob", "right")
    client = _imap(source_server, certs, "imap", closing)
    with pytest.raises(imapclient.exceptions.LoginError):
        client.login("bob", "wrong")
    source_server.add_user("carol", "pw")
    client = _imap(source_server, certs, "imaps", closing)
    client.login("carol", "pw")
    assert client.namespace().personal == (("", "."),)


def _pop3(server, certs, mode, closing):
    if mode == "pop3s":
        return closing(poplib.POP3_SSL(server.host, server.pop3s_port, context=_ctx(certs)))
    client = closing(poplib.POP3(server.host, server.pop3_port))
    client.stls(_ctx(certs))
    return client


@pytest.mark.parametrize("mode", ["pop3-stls", "pop3s"])
def test_pop3_uidl_and_retr_leave_flags_alone(source_server, certs, mode, closing):
    user = source_server.add_user("dave", "pw")
    raws = [b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\nbare: lf\n\nsecond\n"]
    uids = source_server.seed(user, "INBOX", [SeedMessage(r) for r in raws])
    pop = _pop3(source_server, certs, mode, closing)
    pop.user("dave")
    pop.pass_("pw")
    listing = [line.split() for line in pop.uidl()[1]]
    uidvalidity = source_server.mailbox_status(user, "INBOX", "uidvalidity")
    assert [uidl.decode() for _, uidl in listing] == [f"{uid:08x}{uidvalidity:08x}"
                                                      for uid in uids]
    for number, raw in enumerate(raws, 1):
        lines = pop.retr(number)[1]
        assert b"\r\n".join(lines) + b"\r\n" == as_imap_bytes(raw)
    pop.quit()
    assert all("\\Seen" not in m.flags for m in source_server.list_messages(user, "INBOX"))


def test_seed_sets_flags_internaldate_and_bytes(source_server, certs, closing):
    user = source_server.add_user("erin", "pw")
    messages = [
        SeedMessage(b"Subject: a\r\n\r\nA\r\n", ("\\Seen", "\\Answered"),
                    datetime.datetime(2019, 5, 1, 12, 0, tzinfo=UTC)),
        SeedMessage(b"Subject: b\n\nbare lf\n", ("\\Flagged", "\\Draft", "Work", "$Forwarded"),
                    datetime.datetime(2001, 1, 2, 3, 4, 5, tzinfo=UTC)),
        SeedMessage(b"Subject: c\r\n\r\nno final newline", (),
                    datetime.datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ]
    folder = "Reisen.Überblick"
    uids = source_server.seed(user, folder, messages)
    client = _imap(source_server, certs, "imap", closing)
    client.normalise_times = False
    client.login("erin", "pw")
    assert any(name == folder for _, _, name in client.list_folders())
    client.select_folder(folder, readonly=True)
    fetched = client.fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[]"])
    for uid, message in zip(uids, messages, strict=True):
        data = fetched[uid]
        assert {f.decode() for f in data[b"FLAGS"]} - {"\\Recent"} == set(message.flags)
        assert data[b"INTERNALDATE"] == message.internaldate
        assert data[b"BODY[]"] == as_imap_bytes(message.raw)
        assert data[b"RFC822.SIZE"] == len(as_imap_bytes(message.raw))


def test_list_messages_matches_imap_for_the_corpus(source_server, certs, corpus, closing):
    user = source_server.add_user("frank", "pw")
    by_folder = {}
    for message in corpus:
        by_folder.setdefault(message.folder, []).append(message)
    client = _imap(source_server, certs, "imap", closing)
    client.login("frank", "pw")
    for folder, messages in by_folder.items():
        source_server.seed(user, folder, messages)
        stored = source_server.list_messages(user, folder)
        assert [s.raw for s in stored] == [as_imap_bytes(m.raw) for m in messages]
        assert [s.flags for s in stored] == [frozenset(m.flags) for m in messages]
        assert [s.internaldate for s in stored] == [m.internaldate for m in messages]
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search(), ["RFC822.SIZE", "BODY.PEEK[]"])
        assert [fetched[s.uid][b"BODY[]"] for s in stored] == [s.raw for s in stored]
        assert [fetched[s.uid][b"RFC822.SIZE"] for s in stored] == [s.size for s in stored]
    assert set(source_server.folders(user)) >= set(by_folder)


def test_create_folder_with_non_ascii_name(source_server, certs, closing):
    user = source_server.add_user("gina", "pw")
    source_server.create_folder(user, "Entwürfe.Ärger")
    assert "Entwürfe.Ärger" in source_server.folders(user)
    client = _imap(source_server, certs, "imap", closing)
    client.login("gina", "pw")
    client.folder_encode = False
    names = [name for _, _, name in client.list_folders()]
    assert b"Entw&APw-rfe.&AMQ-rger" in names


def test_stop_leaves_no_processes(certs, closing):
    server = SourceServer(certs).start()
    server.add_user("hank", "pw")
    client = closing(imapclient.IMAPClient(server.host, server.imap_port, ssl=False))
    client.login("hank", "pw")
    client.select_folder("INBOX")
    assert len(server.processes()) > 3
    server.stop()
    assert server.processes() == []
