"""The APPEND writer and the target's pure helpers: command format, flags, replies, identity."""

from __future__ import annotations

import datetime
import re
import socket
import threading
from collections.abc import Callable

import pytest

from migrator.engine.push.context import Parallelism
from migrator.engine.push.message import delivery_date
from migrator.errors import ConnectionLost, TokenExpired
from migrator.targets.append_items import (
    AppendItem,
    Selected,
    append_command,
    imap_date,
    keep_flags,
)
from migrator.targets.identity import Identity, Matcher, TargetEntry, Wanted, identity_of
from migrator.targets.imap import AppendWriter
from migrator.targets.office365 import refusal

UTC = datetime.UTC


def item(ref: int, size: int = 5, folder: str = "INBOX", flags=("\\Seen",),
         when: datetime.datetime | None = None, flagged: bool = False) -> AppendItem:
    return AppendItem(ref, folder, flags, when, size, store_flagged=flagged)


@pytest.mark.parametrize("value, text", [
    (datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC), "06-May-2020 07:08:09 +0000"),
    (datetime.datetime(1999, 12, 31, 23, 59, 59,
                       tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))),
     "31-Dec-1999 23:59:59 -0530"),
    (datetime.datetime(2021, 1, 2, 3, 4, 5,
                       tzinfo=datetime.timezone(datetime.timedelta(hours=9))),
     "02-Jan-2021 03:04:05 +0900"),
])
def test_internaldate_format(value: datetime.datetime, text: str) -> None:
    assert imap_date(value) == text


@pytest.mark.parametrize("appended, flags, nonsync, line", [
    (item(1), ("\\Seen",), True, b'T1 APPEND "INBOX" (\\Seen) {5+}\r\n'),
    (item(1, folder="Entwürfe"), (), False, b'T1 APPEND "Entw&APw-rfe" {5}\r\n'),
    (item(1, folder='a"b\\c'), (), True, b'T1 APPEND "a\\"b\\\\c" {5+}\r\n'),
    (item(1, when=datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)),
     ("\\Flagged", "$Work"), True,
     b'T1 APPEND "INBOX" (\\Flagged $Work) "06-May-2020 07:08:09 +0000" {5+}\r\n'),
])
def test_append_command(appended: AppendItem, flags, nonsync: bool, line: bytes) -> None:
    assert append_command(b"T1", appended, flags, nonsync) == line


EXCHANGE = Selected("INBOX", 1, 0, ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                    "\\Draft", "$MDNSent"))
DOVECOT = Selected("INBOX", 1, 0, ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                   "\\Draft", "\\*"))


@pytest.mark.parametrize("flags, selected, sent, dropped", [
    (("\\Seen", "\\Recent", "\\Deleted"), DOVECOT, ("\\Seen",), ()),
    (("\\seen", "\\FLAGGED"), EXCHANGE, ("\\Flagged", "\\Seen"), ()),
    (("$Forwarded", "Work", "\\Answered"), EXCHANGE, ("\\Answered",), ("$Forwarded", "Work")),
    (("$MDNSent", "Work"), EXCHANGE, ("$MDNSent",), ("Work",)),
    (("$Forwarded", "Work"), DOVECOT, ("$Forwarded", "Work"), ()),
    (("Work",), None, ("Work",), ()),
    (("bad(keyword", "ünï"), DOVECOT, (), ("bad(keyword", "ünï")),
])
def test_flags_kept_only_where_permanentflags_allow(flags, selected, sent, dropped) -> None:
    assert keep_flags(flags, selected) == (sent, dropped)


@pytest.mark.parametrize("text, verdict", [
    ("Maximum size of appendable message has been exceeded.", "too-big"),
    ("Command Argument Error. 11", "refused"),  # oversize, quota or a long line
    ("[LIMIT] Mail size is too large", "too-big"),
    ("[OVERQUOTA] Quota exceeded (mailbox for user is full)", "refused"),
    ("Request is throttled. Suggested Backoff Time: 2000 milliseconds", None),
    ("[TRYCREATE] Mailbox doesn't exist", None),
    ("APPEND failed", None),
    ("Message contains bare newlines", "refused"),  # Cyrus: plain NO, no response code
    ("Message contains invalid header", "refused"),
    ("Message contains NUL characters", "refused"),
    ("Message has no header/body separator", "refused"),
])
def test_refusals(text: str, verdict: str | None) -> None:
    assert refusal(text) == verdict


def test_identity_survives_reencoded_headers() -> None:
    plain = identity_of(b"Subject: Gr\xc3\xbc\xc3\x9fe  aus\r\n\tK\xc3\xb6ln\r\nFrom: a@b\r\n\r\nx")
    encoded = identity_of(b"From: a@b\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
                          b"\r\n")
    assert plain.fingerprint == encoded.fingerprint and plain.fingerprint
    assert identity_of(b"Message-ID:\r\n <a@b>\r\n\r\n").message_id == "<a@b>"
    assert identity_of(b"X-Other: 1\r\n\r\nbody").anonymous


def test_matcher_counts_copies_and_respects_claims() -> None:
    same = Identity("<m@x>", "")
    entries = [TargetEntry(uid, 100, same) for uid in (1, 2, 3)]
    matcher = Matcher(entries, claimed={2})
    assert matcher.claim(Wanted(1, same)).uid == 1
    assert matcher.claim(Wanted(2, same)).uid == 3
    assert matcher.claim(Wanted(3, same)) is None  # two copies free, a third is missing
    sized = Matcher([TargetEntry(9, 120, same)])
    assert sized.claim(Wanted(1, same, frozenset({100}))) is None
    assert sized.claim(Wanted(1, same, frozenset({100, 120}))).uid == 9


def test_matcher_falls_back_to_fingerprint_when_exchange_added_a_message_id() -> None:
    target = TargetEntry(4, 50, Identity("<added-by-exchange@x>", "date\x1ffrom\x1fsubject"))
    wanted = Wanted(1, Identity("", "date\x1ffrom\x1fsubject"))
    assert Matcher([target]).claim(wanted).uid == 4


@pytest.mark.parametrize("data, expected", [
    (b"Received: from a by b; Tue, 01 Jan 2019 10:00:00 +0100\r\nDate: x\r\n\r\n",
     datetime.datetime(2019, 1, 1, 9, 0, tzinfo=UTC)),
    (b"Received: garbage\r\nDate: Mon, 31 Dec 2018 09:00:00 +0000\r\n\r\n",
     datetime.datetime(2018, 12, 31, 9, 0, tzinfo=UTC)),
    (b"Subject: no dates\r\n\r\n", None),
])
def test_delivery_date_for_messages_without_internaldate(data: bytes, expected) -> None:
    assert delivery_date(data) == expected


def test_parallelism_drops_after_repeated_throttling_never_below_one() -> None:
    notices = []
    governor = Parallelism(3, notices.append, "acct")
    for _ in range(2):
        governor.throttled()
    assert governor.limit == 3
    governor.throttled()
    assert governor.limit == 2 and not governor.allows(2) and governor.allows(1)
    for _ in range(20):
        governor.throttled()
    assert governor.limit == 1 and len(notices) == 2


# -- the writer against a scripted server -------------------------------------------------
class FakeClient:
    """What AppendWriter takes from imapclient: capabilities and the socket."""

    def __init__(self, sock: socket.socket, capabilities: tuple[bytes, ...]) -> None:
        self.sock = sock
        self.caps = capabilities

    def capabilities(self) -> tuple[bytes, ...]:
        return self.caps

    def socket(self) -> socket.socket:
        return self.sock

    def shutdown(self) -> None:
        self.sock.close()


def scripted(server: Callable[[socket.socket], None], literal_plus: bool = True,
             window: int = 64) -> tuple[AppendWriter, threading.Thread]:
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)
    thread = threading.Thread(target=server, args=(theirs,), daemon=True)
    thread.start()
    caps = (b"IMAP4rev1", b"UIDPLUS") + ((b"LITERAL+",) if literal_plus else ())
    return AppendWriter(FakeClient(ours, caps), window=window), thread  # type: ignore[arg-type]


def read_appends(stream, count: int, selects: list[bytes] | None = None,
                 refuse: bool = False) -> list[tuple[bytes, bytes]]:
    """(tag, literal) of `count` APPEND commands read from the client. A SELECT the writer
    sends before a folder's APPENDs is answered at once (OK, or NO if `refuse`) and its
    folder noted in `selects`."""
    got = []
    while len(got) < count:
        line = stream.readline()
        tag, command, rest = line.split(b" ", 2)
        if command == b"SELECT":
            if selects is not None:
                selects.append(rest.rstrip())
            stream.write(tag + (b" NO no such folder\r\n" if refuse else b" OK selected\r\n"))
            stream.flush()
            continue
        size = int(re.search(rb"\{(\d+)\+?\}", line).group(1))
        literal = stream.read(size)
        assert stream.read(2) == b"\r\n"
        got.append((line.split()[0], literal))
    return got


def test_appends_are_pipelined_with_literal_plus_and_uids_come_back() -> None:
    seen: dict[str, int] = {}

    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        appends = read_appends(stream, 5)  # all five arrive before any reply is sent
        seen["before_first_reply"] = len(appends)
        for number, (tag, _) in enumerate(appends, 1):
            stream.write(b"* %d EXISTS\r\n%s OK [APPENDUID 77 %d] done\r\n" % (number, tag,
                                                                                number + 10))
        stream.flush()

    writer, thread = scripted(server)
    for ref in range(5):
        writer.submit(item(ref), b"hello", ("\\Seen",))
    writer.drain()
    thread.join(5)
    assert seen["before_first_reply"] == 5
    assert [(o.item.ref, o.status, o.uidvalidity, o.uid) for o in writer.outcomes] == [
        (ref, "done", 77, ref + 11) for ref in range(5)]


def test_without_literal_plus_each_literal_waits_for_the_go_ahead() -> None:
    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        select = stream.readline()
        assert select.endswith(b' SELECT "INBOX"\r\n')
        stream.write(select.split()[0] + b" OK selected\r\n")
        for uid in (1, 2):
            line = stream.readline()
            assert line.endswith(b"{5}\r\n")
            stream.write(b"+ go ahead\r\n")
            stream.flush()
            assert stream.read(7) == b"hello\r\n"
            stream.write(line.split()[0] + b" OK [APPENDUID 1 %d] ok\r\n" % uid)
            stream.flush()

    writer, thread = scripted(server, literal_plus=False)
    writer.submit(item(1), b"hello", ())
    writer.submit(item(2), b"hello", ())
    writer.drain()
    thread.join(5)
    assert [o.uid for o in writer.outcomes] == [1, 2]


def test_throttled_refused_and_lost_replies_become_outcomes() -> None:
    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        (a, _), (b, _), (c, _), _ = read_appends(stream, 4)
        stream.write(a + b" NO Request is throttled. Suggested Backoff Time: 1500 "
                     b"milliseconds\r\n")
        stream.write(b + b" NO Maximum size of appendable message has been exceeded.\r\n")
        stream.write(c + b" BAD User is authenticated but not connected.\r\n")
        stream.write(b"* BYE Session invalidated - AccessTokenExpired\r\n")
        stream.flush()
        sock.close()

    writer, thread = scripted(server)
    for ref in range(4):
        writer.submit(item(ref), b"hello", ())
    with pytest.raises(TokenExpired):
        writer.drain()
    thread.join(5)
    outcomes = {o.item.ref: o for o in writer.outcomes}
    assert outcomes[0].status == "throttled" and outcomes[0].retry_after == 1.5
    assert outcomes[1].status == "refused" and outcomes[1].reason == "too-big"
    assert outcomes[2].status == "throttled"
    assert outcomes[3].status == "unknown"  # sent, never answered
    assert writer.dead
    with pytest.raises(ConnectionLost):
        writer.submit(item(9), b"hello", ())


def test_window_bounds_what_is_in_flight() -> None:
    most = []

    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        for _ in range(3):
            batch = read_appends(stream, 2)
            most.append(len(batch))
            for tag, _ in batch:
                stream.write(tag + b" OK done\r\n")
            stream.flush()

    writer, thread = scripted(server, window=2)
    for ref in range(6):
        writer.submit(item(ref), b"hello", ())
    writer.drain()
    thread.join(5)
    assert most == [2, 2, 2] and len(writer.outcomes) == 6
    assert all(o.uid is None and o.status == "done" for o in writer.outcomes)  # no UIDPLUS


def test_flags_stored_again_for_every_folder_in_one_round_trip() -> None:
    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        (tag, _), = read_appends(stream, 1)
        stream.write(tag + b" OK [APPENDUID 5 42] done\r\n")
        stream.flush()
        lines = [stream.readline() for _ in range(4)]  # all four before any reply
        assert [line.split(b" ", 1)[1] for line in lines] == [
            b'SELECT "Sent Items"\r\n', b"UID STORE 42:44,50 +FLAGS.SILENT (\\Flagged)\r\n",
            b'SELECT "Gone"\r\n', b"UID STORE 7 +FLAGS.SILENT (\\Flagged)\r\n"]
        replies = [b" OK selected", b" OK stored", b" NO Mailbox doesn't exist",
                   b" BAD No mailbox selected"]
        for line, reply in zip(lines, replies, strict=True):
            stream.write(line.split()[0] + reply + b"\r\n")
        stream.flush()

    writer, thread = scripted(server)
    writer.submit(item(1, folder="Sent Items", flags=("\\Flagged",), flagged=True), b"hello",
                  ("\\Flagged",))
    writer.drain()
    assert [(o.status, o.uid) for o in writer.outcomes] == [("done", 42)]
    failed = writer.store_flags({"Sent Items": [44, 42, 43, 50], "Gone": [7]}, "\\Flagged")
    thread.join(5)
    assert failed == {"Gone": "Mailbox doesn't exist"}


def test_a_message_without_identity_is_known_by_its_internaldate_on_exchange() -> None:
    nothing = Identity("", "")
    added = TargetEntry(7, 900, Identity("<exchange-made@x>", ""), internaldate=1_600_000_000)
    other = TargetEntry(8, 900, Identity("<archived@x>", ""), internaldate=1_600_000_000)
    matcher = Matcher([other, added], known_ids={"<archived@x>"})
    assert matcher.claim(Wanted(1, nothing, internaldate=1_600_000_000)).uid == 7
    assert matcher.claim(Wanted(2, nothing, internaldate=1_600_000_000)) is None
    assert matcher.claim(Wanted(3, nothing)) is None


def test_messages_sharing_a_message_id_are_told_apart_by_internaldate() -> None:
    shared = Identity("<same@x>", "")
    first = TargetEntry(1, 100, shared, internaldate=1_000)
    second = TargetEntry(2, 100, shared, internaldate=2_000)
    matcher = Matcher([first, second])
    assert matcher.claim(Wanted(10, shared, internaldate=2_000)).uid == 2
    assert matcher.claim(Wanted(11, shared, internaldate=3_000)) is None  # not there: resend
    assert matcher.claim(Wanted(12, shared)).uid == 1  # no date to compare: by Message-ID


def test_each_folder_is_selected_once_ahead_of_its_appends_without_a_round_trip() -> None:
    selects: list[bytes] = []
    seen: dict[str, int] = {}

    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        appends = read_appends(stream, 5, selects)  # no reply waited for before sending
        seen["before_first_reply"] = len(appends)
        for tag, _ in appends:
            stream.write(b"* 1 EXISTS\r\n* 1 RECENT\r\n" + tag + b" OK [APPENDUID 7 1] done\r\n")
        stream.flush()

    writer, thread = scripted(server)
    for ref, folder in enumerate(("INBOX", "INBOX", "Sent Items", "Sent Items", "INBOX")):
        writer.submit(item(ref, folder=folder), b"hello", ())
    writer.drain()
    thread.join(5)
    assert seen["before_first_reply"] == 5
    assert selects == [b'"INBOX"', b'"Sent Items"', b'"INBOX"']
    assert [o.status for o in writer.outcomes] == ["done"] * 5


def test_a_folder_that_cannot_be_selected_still_gets_its_appends_and_no_more_selects() -> None:
    selects: list[bytes] = []

    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        for _ in range(3):
            (tag, _), = read_appends(stream, 1, selects, refuse=True)
            stream.write(tag + b" OK [APPENDUID 7 1] done\r\n")
            stream.flush()

    writer, thread = scripted(server)
    for ref in range(3):
        writer.submit(item(ref, folder="Odd"), b"hello", ())
        writer.drain()
    thread.join(5)
    assert selects == [b'"Odd"']
    assert [o.status for o in writer.outcomes] == ["done"] * 3


def test_after_storing_flags_elsewhere_the_append_folder_is_selected_again() -> None:
    selects: list[bytes] = []

    def server(sock: socket.socket) -> None:
        stream = sock.makefile("rwb")
        (tag, _), = read_appends(stream, 1, selects)
        stream.write(tag + b" OK [APPENDUID 5 42] done\r\n")
        stream.flush()
        for line in (stream.readline(), stream.readline()):  # SELECT "Sent Items", STORE
            stream.write(line.split()[0] + b" OK\r\n")
        stream.flush()
        (tag, _), = read_appends(stream, 1, selects)
        stream.write(tag + b" OK [APPENDUID 5 43] done\r\n")
        stream.flush()

    writer, thread = scripted(server)
    writer.submit(item(1, folder="INBOX"), b"hello", ())
    writer.drain()
    assert writer.store_flags({"Sent Items": [42]}, "\\Flagged") == {}
    writer.submit(item(2, folder="INBOX"), b"hello", ())
    writer.drain()
    thread.join(5)
    assert selects == [b'"INBOX"', b'"INBOX"']
