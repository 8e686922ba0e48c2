"""The lean IMAP response reader: literals, quoting, pipelining, and what ends a connection."""

from __future__ import annotations

import imaplib
import io

import pytest

from migrator.errors import (
    AuthError,
    ConnectError,
    MigratorError,
    RetryableError,
    Throttled,
    TokenExpired,
)
from migrator.sources.imap import (
    ImapSource,
    flags_of,
    internaldate_iso,
)
from migrator.sources.imap_wire import (
    CommandFailed,
    Completion,
    ConnectionClosed,
    Untagged,
    Wire,
    pairs,
    parse,
    quote,
)


def wire(server_bytes: bytes) -> tuple[Wire, list[bytes]]:
    sent: list[bytes] = []
    return Wire(sent.append, io.BufferedReader(io.BytesIO(server_bytes))), sent


def source(server_bytes: bytes, capabilities=("IMAP4REV1",)) -> ImapSource:
    """An ImapSource over canned server bytes (no socket)."""
    fake = object.__new__(ImapSource)
    fake.capabilities = frozenset(capabilities)
    fake.wire, _ = wire(server_bytes)
    fake.selected = None
    fake.searches = {}
    return fake


@pytest.mark.parametrize("text, expected", [
    (b'(UID 5 FLAGS (\\Seen $Label))', [[b"UID", 5, b"FLAGS", [b"\\Seen", b"$Label"]]]),
    (b'NIL "a \\"q\\" \\\\ b" atom', [None, b'a "q" \\ b', b"atom"]),
    (b'(BODY[HEADER.FIELDS (MESSAGE-ID)] x BODY[]<0> y)',
     [[b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"x", b"BODY[]<0>", b"y"]]),
    (b'(\\HasNoChildren) "." INBOX', [[b"\\HasNoChildren"], b".", b"INBOX"]),
    (b'(TAG "M3") UID ALL 1:3,5', [[b"TAG", b"M3"], b"UID", b"ALL", b"1:3,5"]),
    (b'((a b) (c))', [[[b"a", b"b"], [b"c"]]]),
    (b'() "/" [Gmail]/All]Mail', [[], b"/", b"[Gmail]/All]Mail"]),  # "]" is an ASTRING-CHAR
    (b'(FLAGS (\\* $MDNSent) X-GM-LABELS ("\\\\Important"))',
     [[b"FLAGS", [b"\\*", b"$MDNSent"], b"X-GM-LABELS", [b"\\Important"]]]),
    (b'(unclosed', [[b"unclosed"]]),
])
def test_parse(text, expected):
    assert parse([text]) == expected


def test_literal_is_taken_whole_even_if_it_looks_like_syntax():
    body = b'NIL ) ( "unbalanced\r\n{5}\r\n* 1 FETCH'
    w, _ = wire(b"* 1 FETCH (UID 9 BODY[] {%d}\r\n" % len(body) + body + b")\r\n")
    response = w.read()
    assert isinstance(response, Untagged) and response.kind == "FETCH" and response.number == 1
    assert pairs(response.data) == {b"UID": 9, b"BODY[]": body}


def test_command_yields_untagged_until_its_own_tag_and_raises_on_no():
    w, sent = wire(b"* 3 EXISTS\r\n* OK [UIDNEXT 4] x\r\nM1 OK done\r\n"
                   b"M2 NO [CANNOT] refused\r\n")
    assert [r.kind for r in w.command(b"NOOP")] == ["EXISTS", "OK"]
    with pytest.raises(CommandFailed) as failed:
        list(w.command(b"EXAMINE x"))
    assert (failed.value.status, failed.value.text) == ("NO", "[CANNOT] refused")
    assert sent == [b"M1 NOOP\r\n", b"M2 EXAMINE x\r\n"]


def test_completion_of_an_earlier_pipelined_command_is_skipped():
    w, _ = wire(b"M1 OK a\r\n* 1 EXISTS\r\nM2 OK b\r\n")
    w.send(b"NOOP")
    tag = w.send(b"NOOP")
    assert [r.kind for r in w.until(tag)] == ["EXISTS"]


@pytest.mark.parametrize("server", [
    b"", b"* 1 FETCH (UID 1 BODY[] {10}\r\nshort", b"* 1 FETCH (UID 1", b"* BYE going away\r\n",
])
def test_eof_truncation_and_bye_close_the_connection(server):
    w, _ = wire(server)
    with pytest.raises(ConnectionClosed):
        w.read()


@pytest.mark.parametrize("server, error, retry_after", [
    (b"* BYE Session invalidated - AccessTokenExpired\r\n", TokenExpired, None),
    (b"* BYE going away\r\n", ConnectionClosed, None),
    (b"", ConnectionClosed, None),
    (b"M1 BAD Request is throttled. Suggested Backoff Time: 1200 milliseconds\r\n",
     Throttled, 1.2),
    (b"M1 NO Request is throttled. Suggested Backoff Time: 50 milliseconds\r\n",
     Throttled, 0.05),
    (b"M1 BAD User is authenticated but not connected.\r\n", Throttled, None),
    (b"M1 NO [CANNOT] refused\r\n", CommandFailed, None),
])
def test_errors_are_classified_where_they_enter(server, error, retry_after):
    """The wire raises migrator's own errors: the engine never sees a library exception."""
    w, _ = wire(server)
    with pytest.raises(error) as raised:
        list(w.command(b"NOOP"))
    assert type(raised.value) is error and isinstance(raised.value, MigratorError)
    assert getattr(raised.value, "retry_after", None) == retry_after
    assert isinstance(raised.value, RetryableError) is (error is not CommandFailed)


def test_before_literal_is_told_each_literal_size_before_it_is_read():
    w, _ = wire(b"* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n")
    sizes = []
    w.before_literal = sizes.append
    w.read()
    assert sizes == [3]


def test_read_fetch_fast_and_general_shapes_and_empty_answers():
    server = (b"* 1 FETCH (UID 10 FLAGS (\\Seen \\Recent) INTERNALDATE "
              b'"17-Jul-1996 02:44:25 -0700" BODY[] {4}\r\nabcd)\r\n'
              b'* 2 FETCH (BODY[] {3}\r\nxyz INTERNALDATE " 2-Jan-2020 10:00:00 +0100" '
              b"UID 11 FLAGS ())\r\n"
              b"* 3 FETCH (UID 12)\r\n"          # Exchange: listed, but nothing served
              b"* 4 FETCH (FLAGS (\\Deleted))\r\n"  # unsolicited flag update
              b"* 5 FETCH (UID 14 BODY[] NIL)\r\n"
              b"M1 OK done\r\n")
    messages = list(source(server).read_fetch(b"M1"))
    assert [(m.uid, m.flags, m.internaldate, m.data) for m in messages] == [
        (10, ("\\Seen",), "1996-07-17T02:44:25-07:00", b"abcd"),
        (11, (), "2020-01-02T10:00:00+01:00", b"xyz"),
    ]


def test_listing_status_and_esearch():
    server = (b"* 1 FETCH (UID 4 RFC822.SIZE 100 FLAGS (\\Seen Work))\r\n"
              b"* 2 FETCH (UID 7 RFC822.SIZE 2000 FLAGS ())\r\nM1 OK\r\n"
              b'* ESEARCH (TAG "M2") UID ALL 4,7:9\r\nM2 OK\r\n')
    imap = source(server, ("IMAP4REV1", "ESEARCH"))
    listing = imap.listing()
    assert {uid: (m.size, m.flags) for uid, m in listing.items()} == {
        4: (100, ("Work", "\\Seen")), 7: (2000, ())}
    assert imap.uids() == {4, 7, 8, 9}


def test_a_search_answered_while_an_earlier_fetch_is_read_is_kept_for_it():
    """A FETCH of bodies and, pipelined behind it, the UID SEARCH asking which UIDs it
    missed still exist: a server may answer the SEARCH before the FETCH ends (Dovecot runs
    them at once). The answer is kept for `read_search`, by its ESEARCH tag or, for a plain
    SEARCH, for the next one read; it was dropped, and the UIDs looked gone."""
    body = b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" BODY[] {4}\r\nabcd)\r\n'
    for answer, capabilities in ((b'* ESEARCH (TAG "M2") UID ALL 7:8\r\n', ("ESEARCH",)),
                                 (b"* SEARCH 7 8\r\n", ())):
        imap = source(b"* 1 FETCH (UID 4 FLAGS () " + body + answer + b"M1 OK\r\nM2 OK\r\n",
                      ("IMAP4REV1", *capabilities))
        fetch, search = imap.send_fetch([4]), imap.send_search([7, 8, 9])
        assert [message.uid for message in imap.read_fetch(fetch)] == [4]
        assert imap.read_search(search) == {7, 8}
        assert imap.searches == {}


def test_an_esearch_answer_for_another_search_is_kept_for_that_one():
    imap = source(b'* ESEARCH (TAG "M2") UID ALL 5\r\n* ESEARCH (TAG "M1") UID ALL 3\r\n'
                  b"M1 OK\r\nM2 OK\r\n", ("IMAP4REV1", "ESEARCH"))
    first, second = imap.send_search([3]), imap.send_search([5])
    assert imap.read_search(first) == {3}
    assert imap.read_search(second) == {5}


def test_pipelined_search_and_changes_are_told_apart_however_they_interleave():
    """The planner's UID SEARCH and CHANGEDSINCE FETCH, sent together: the FETCH ends
    first and the SEARCH's answer comes after its completion. An unsolicited FETCH without
    a size is a flag change, not a listing."""
    server = (b"* 3 FETCH (UID 3 FLAGS (\\Flagged) RFC822.SIZE 10 MODSEQ (5))\r\n"
              b"* 9 FETCH (UID 9 FLAGS () MODSEQ (6))\r\n"
              b"M2 OK Fetch completed\r\n"
              b'* ESEARCH (TAG "M1") UID ALL 1:3,9\r\n'
              b"M1 OK Search completed\r\n")
    imap = source(server, ("IMAP4REV1", "ESEARCH", "CONDSTORE"))
    search, changes = imap.send_search(None), imap.send_changes(4)
    uids, changed = imap.read_changes(search, changes)
    assert uids == {1, 2, 3, 9}
    assert {uid: (m.size, m.flags) for uid, m in changed.items()} == {3: (10, ("\\Flagged",))}


def test_a_refusal_among_pipelined_commands_is_raised_once_all_are_read():
    imap = source(b"M2 NO no CHANGEDSINCE here\r\n* SEARCH 1 2\r\nM1 OK\r\n"
                  b"* 3 EXISTS\r\nM3 OK\r\n")
    search, changes = imap.send_search(None), imap.send_changes(4)
    with pytest.raises(CommandFailed, match="CHANGEDSINCE"):
        imap.read_changes(search, changes)
    assert [r.kind for r in imap.wire.until(imap.wire.send(b"NOOP"))] == ["EXISTS"]


def test_statuses_pipelined_in_one_round_trip_and_refusals_left_out():
    server = (b'* STATUS "INBOX" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 9)\r\nM1 OK\r\n'
              b"M2 NO no such folder\r\n"
              b"* STATUS 2019 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5)\r\nM3 OK\r\n")
    from migrator.sources.imap import Folder

    folders = [Folder(name, name, ".", ()) for name in ("INBOX", "Gone", "2019")]
    statuses = source(server).statuses(folders)
    assert set(statuses) == {"INBOX", "2019"}
    assert statuses["INBOX"].uidnext == 3 and statuses["INBOX"].highestmodseq is None


def test_list_status_gives_folders_and_their_status_in_one_command():
    server = (b'* LIST (\\HasNoChildren) "." INBOX\r\n'
              b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3 HIGHESTMODSEQ 4)\r\n"
              b'* LIST (\\HasNoChildren) "." "Reisen.&ANw-berblick"\r\n'
              b'* STATUS "Reisen.&ANw-berblick" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5 '
              b"HIGHESTMODSEQ 1)\r\nM1 OK\r\n")
    imap = source(server, ("LIST-STATUS", "CONDSTORE"))
    folders, statuses = imap.folders_with_status()
    assert [f.name for f in folders] == ["INBOX", "Reisen.Überblick"]
    assert statuses["INBOX"].highestmodseq == 4 and statuses["Reisen.&ANw-berblick"].uidnext == 1


def test_folders_decode_modified_utf7_and_keep_the_wire_name():
    server = (b'* LIST (\\HasNoChildren) "." "Reisen.&ANw-berblick"\r\n'
              b'* LIST (\\Noselect \\HasChildren) "/" {7}\r\nParent/\r\n'
              b'* LIST (\\Sent) NIL Sent\r\nM1 OK\r\n')
    folders = source(server).folders()
    assert [(f.name, f.raw_name, f.delimiter, f.selectable, f.special_use)
            for f in folders] == [("Reisen.Überblick", "Reisen.&ANw-berblick", ".", True, None),
                                  ("Parent/", "Parent/", "/", False, None),
                                  ("Sent", "Sent", None, True, "\\Sent")]


def test_examine_reads_the_response_codes():
    server = (b"* FLAGS (\\Seen)\r\n* OK [PERMANENTFLAGS ()] x\r\n* 12 EXISTS\r\n"
              b"* OK [UIDVALIDITY 77] v\r\n* OK [UIDNEXT 40] n\r\n"
              b"* OK [HIGHESTMODSEQ 901] m\r\nM1 OK [READ-ONLY] done\r\n")
    from migrator.sources.imap import Folder

    status = source(server, ("CONDSTORE",)).examine(Folder("INBOX", "INBOX", ".", ()))
    assert (status.uidvalidity, status.uidnext, status.messages, status.highestmodseq) == \
        (77, 40, 12, 901)


@pytest.mark.parametrize("value, expected", [
    (b"17-Jul-1996 02:44:25 -0700", "1996-07-17T02:44:25-07:00"),
    (b" 1-Feb-2000 00:00:00 +0530", "2000-02-01T00:00:00+05:30"),
    (b"garbage", None), (b"31-Foo-2000 00:00:00 +0000", None),
])
def test_internaldate_keeps_the_offset(value, expected):
    assert internaldate_iso(value) == expected


def test_flags_drop_recent_keep_keywords_sorted():
    assert flags_of([b"\\Seen", b"\\Recent", b"$Forwarded", b"Work"]) == \
        ("$Forwarded", "Work", "\\Seen")
    assert flags_of(None) == ()


def test_quote():
    assert quote("Sent Items") == b'"Sent Items"'
    assert quote('a"b\\c') == b'"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        quote("Übersicht")


def test_completion_parsed():
    w, _ = wire(b"M7 BAD Request is throttled. Suggested Backoff Time: 500 milliseconds\r\n")
    response = w.read()
    assert response == Completion(b"M7", "BAD",
                                  "Request is throttled. Suggested Backoff Time: 500 milliseconds")


class LoginClient:
    """imapclient's login as it behaves: any imaplib error becomes a LoginError."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def login(self, username: str, password: str) -> None:
        from imapclient.exceptions import LoginError

        try:
            raise self.error
        except Exception as exc:
            raise LoginError(str(exc)) from None  # imapclient: the abort stays the context


@pytest.mark.parametrize("error, expected", [
    (imaplib.IMAP4.abort("socket error: EOF"), ConnectError),
    (ConnectionResetError(104, "Connection reset by peer"), ConnectError),
    (imaplib.IMAP4.error("[AUTHENTICATIONFAILED] Authentication failed."), AuthError),
])
def test_a_connection_lost_during_login_is_no_refused_login(error, expected):
    """A session cut while logging in (Exchange's BYE, a proxy's EOF) is worth reconnecting;
    only the server's refusal means the credentials are wrong."""
    from migrator.config import Endpoint
    from migrator.secrets import Secret
    from migrator.wire.imapconn import login

    endpoint = Endpoint(kind="imap", host="127.0.0.1", port=1, username="bob",
                        password=Secret("s3cr3t-value"))
    with pytest.raises(expected) as raised:
        login(LoginClient(error), endpoint, "bob", None, False)
    assert (expected is AuthError) == isinstance(raised.value, AuthError)
    assert "s3cr3t" not in str(raised.value)


def test_the_greeting_wait_is_short_but_never_longer_than_the_timeout():
    from migrator.config import Endpoint
    from migrator.wire.greeting import GREETING_TIMEOUT, greeting_timeout

    def endpoint(timeout: float) -> Endpoint:
        return Endpoint(kind="imap", host="127.0.0.1", port=1, username="u", timeout=timeout)

    assert greeting_timeout(endpoint(60)) == GREETING_TIMEOUT == 10.0
    assert greeting_timeout(endpoint(2)) == 2

