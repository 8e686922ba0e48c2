"""Self-tests of FaultProxy: each fault happens exactly as scheduled."""
import imaplib
import poplib
import re
import socket
import ssl
import time

import imapclient
import msal
import pytest

from tests.world.mailstore import SeedMessage
from tests.world.proxy import Cut, Rewrite, Schedule
from tests.world.scanner import HEADER, AddHeader, unscanned

pytestmark = pytest.mark.world
THROTTLED = b"Request is throttled. Suggested Backoff Time: %d milliseconds"


def _user(server, messages=0, size=20_000):
    user = server.add_user("pat", "pw")
    server.seed(user, "INBOX", [SeedMessage(b"Subject: m%d\r\n\r\n" % i + b"y" * size + b"\r\n")
                                for i in range(messages)])
    return user


def _imap(proxy, closing):
    client = closing(imaplib.IMAP4(proxy.host, proxy.port, timeout=10))
    client.login("pat", "pw")
    return client


def _raw(proxy, closing):
    sock = closing(socket.create_connection((proxy.host, proxy.port), timeout=10))
    assert sock.recv(4096).startswith(b"* OK")
    return sock


def _read_until(sock, marker):
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _read_to_eof(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _subjects(server, user):
    return [m.raw.split(b"\r\n", 1)[0] for m in server.list_messages(user, "INBOX")]


def test_throttled_appends_exactly_as_scheduled(source_server, fault_proxy, closing):
    user = _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.throttle("APPEND", nth=[2, 4], backoff_ms=1500)
    client = _imap(proxy, closing)
    replies = [client.append("INBOX", None, None, b"Subject: %d\r\n\r\nbody\r\n" % i)
               for i in range(5)]
    assert [typ for typ, _ in replies] == ["OK", "NO", "OK", "NO", "OK"]
    assert replies[1][1] == [THROTTLED % 1500]
    assert client.noop()[0] == "OK"
    assert _subjects(source_server, user) == [b"Subject: 0", b"Subject: 2", b"Subject: 4"]
    assert proxy.events == [("throttle", "APPEND", 2), ("throttle", "APPEND", 4)]
    assert proxy.stats["command APPEND"] == 5


def test_throttled_literal_plus_append_is_swallowed(source_server, fault_proxy, closing):
    user = _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.throttle("APPEND", nth=[1], backoff_ms=10)
    sock = _raw(proxy, closing)
    messages = [b"Subject: first\r\n\r\n" + b"a" * 5000, b"Subject: second\r\n\r\nb\r\n"]
    commands = b"a1 LOGIN pat pw\r\n" + b"".join(
        b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m) for i, m in enumerate(messages, 2))
    sock.sendall(commands)
    replies = _read_until(sock, b"a3 ").split(b"\r\n")
    assert b"a2 NO " + THROTTLED % 10 in replies
    assert any(r.startswith(b"a3 OK") for r in replies)
    assert _subjects(source_server, user) == [b"Subject: second"]
    assert proxy.events == [("throttle", "APPEND", 1)]


def test_throttled_fetch_gets_bad_and_uid_fetch_counts(source_server, fault_proxy, closing):
    _user(source_server, messages=2)
    proxy = fault_proxy(source_server.imap_port)
    proxy.throttle("FETCH", nth=[2], backoff_ms=100)
    client = _imap(proxy, closing)
    client.select("INBOX")
    assert client.fetch("1", "(FLAGS)")[0] == "OK"
    with pytest.raises(imaplib.IMAP4.error, match=r"BAD.*Suggested Backoff Time: 100 milli"):
        client.uid("FETCH", "2", "(FLAGS)")
    assert client.fetch("2", "(FLAGS)")[0] == "OK"
    assert proxy.events == [("throttle", "UID FETCH", 2)]


def test_drop_in_the_middle_of_an_append_literal(source_server, fault_proxy, closing):
    user = _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.drop_in_literal("APPEND", nth=[2])
    client = _imap(proxy, closing)
    assert client.append("INBOX", None, None, b"Subject: 1\r\n\r\none\r\n")[0] == "OK"
    with pytest.raises(imaplib.IMAP4.abort):
        client.append("INBOX", None, None, b"Subject: 2\r\n\r\n" + b"z" * 100_000)
    again = _imap(proxy, closing)
    assert again.append("INBOX", None, None, b"Subject: 3\r\n\r\nthree\r\n")[0] == "OK"
    assert _subjects(source_server, user) == [b"Subject: 1", b"Subject: 3"]
    assert proxy.events == [("literal_drop", "APPEND", 2)]
    assert proxy.stats["connections"] == 2


def test_drop_in_the_middle_of_a_fetch_literal(source_server, fault_proxy, closing):
    _user(source_server, messages=3, size=50_000)
    proxy = fault_proxy(source_server.imap_port)
    proxy.drop_in_literal("FETCH", nth=[2], fraction=0.25)
    client = _imap(proxy, closing)
    client.select("INBOX")
    assert len(client.fetch("1", "(BODY.PEEK[])")[1][0][1]) > 50_000
    with pytest.raises(imaplib.IMAP4.abort):
        client.fetch("2", "(BODY.PEEK[])")
    client = _imap(proxy, closing)
    client.select("INBOX")
    assert len(client.fetch("2", "(BODY.PEEK[])")[1][0][1]) > 50_000
    assert proxy.events == [("literal_drop", "FETCH", 2)]


def test_drop_at_a_command_cuts_before_forwarding_it(source_server, fault_proxy, closing):
    _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.drop_at("SELECT", nth=[1])
    client = _imap(proxy, closing)
    with pytest.raises(imaplib.IMAP4.abort):
        client.select("INBOX")
    assert _imap(proxy, closing).select("INBOX")[0] == "OK"  # only the first is cut
    assert proxy.events == [("command_drop", "SELECT", 1)]


def test_bye_at_the_scheduled_command_of_every_connection(source_server, fault_proxy, closing):
    _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.bye(at_command=3)  # imaplib sends CAPABILITY, then LOGIN
    for _ in range(2):
        client = _imap(proxy, closing)
        with pytest.raises(imaplib.IMAP4.abort, match="Session invalidated - AccessTokenExpired"):
            client.noop()
    assert proxy.events == [("bye", 1, 3), ("bye", 2, 3)]


def test_bye_after_seconds_comes_unprompted(source_server, fault_proxy, closing):
    _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.bye(after_seconds=0.2)
    sock = closing(socket.create_connection((proxy.host, proxy.port), timeout=10))
    sock.sendall(b"a1 LOGIN pat pw\r\n")
    lines = _read_to_eof(sock).splitlines(keepends=True)
    # the greeting, the login's answer (untagged lines may come before its tagged OK), then
    # the goodbye nobody asked for, last
    assert lines[0].startswith(b"* OK"), lines
    tagged = [n for n, line in enumerate(lines) if line.startswith(b"a1 ")]
    assert len(tagged) == 1 and lines[tagged[0]].startswith(b"a1 OK"), lines
    assert lines[-1] == b"* BYE Session invalidated - AccessTokenExpired\r\n", lines
    assert tagged[0] < len(lines) - 1
    assert proxy.events == [("bye", 1, 1)]


def test_bye_after_seconds_waits_for_a_slow_login(source_server, fault_proxy, closing):
    _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    proxy.bye(after_seconds=0.3)
    sock = closing(socket.create_connection((proxy.host, proxy.port), timeout=10))
    assert sock.recv(4096).startswith(b"* OK")
    time.sleep(0.6)  # twice the session's age before the login starts: no goodbye yet
    sock.sendall(b"a1 LOGIN pat pw\r\n")
    logged_in, bye = _read_to_eof(sock).splitlines(keepends=True)
    assert logged_in.startswith(b"a1 OK")
    assert bye == b"* BYE Session invalidated - AccessTokenExpired\r\n"


def test_drop_after_bytes_cuts_exactly_there(source_server, fault_proxy, closing):
    _user(source_server, messages=1)
    proxy = fault_proxy(source_server.imap_port)
    proxy.drop_after_bytes(5000, "s2c", connections=[1])
    sock = closing(socket.create_connection((proxy.host, proxy.port), timeout=10))
    sock.sendall(b"a1 LOGIN pat pw\r\na2 SELECT INBOX\r\na3 FETCH 1 BODY.PEEK[]\r\n")
    assert len(_read_to_eof(sock)) == 5000
    client = _imap(proxy, closing)
    client.select("INBOX")
    assert len(client.fetch("1", "(BODY.PEEK[])")[1][0][1]) > 20_000
    assert proxy.events == [("byte_drop", "s2c", 1, 5000)]


def test_delay_and_bandwidth_slow_things_down(source_server, fault_proxy, closing):
    """Only lower bounds: the proxy can never make a round trip faster."""
    _user(source_server, messages=1, size=100_000)
    proxy = fault_proxy(source_server.imap_port, delay=0.05, bandwidth=500_000)
    client = _imap(proxy, closing)
    client.select("INBOX")
    started = time.monotonic()
    client.noop()
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    client.fetch("1", "(BODY.PEEK[])")
    assert time.monotonic() - started >= 0.1 + 0.8 * 100_000 / 500_000


def test_tls_terminating_proxy_in_front_of_office365(office365_server, oauth_service, certs,
                                                     fault_proxy, closing):
    oauth_service.add_client("app", "s3cret")
    oauth_service.grant("app", "kim@contoso.test")
    office365_server.add_user("kim@contoso.test")
    token = msal.ConfidentialClientApplication(
        "app", client_credential="s3cret", authority=oauth_service.authority,
        http_client=oauth_service.http_session(), instance_discovery=False,
    ).acquire_token_for_client(scopes=["https://outlook.office365.com/.default"])
    proxy = fault_proxy(office365_server.imaps_port, tls_terminate=True, certs=certs)
    proxy.throttle("APPEND", nth=[1])
    client = closing(imapclient.IMAPClient(
        proxy.host, proxy.port, ssl_context=ssl.create_default_context(cafile=certs.ca_cert)))
    client.oauth2_login("kim@contoso.test", token["access_token"])
    with pytest.raises(imapclient.exceptions.IMAPClientError, match="Request is throttled"):
        client.append("INBOX", b"Subject: 1\r\n\r\nx\r\n")
    client.append("INBOX", b"Subject: 2\r\n\r\nx\r\n")
    assert len(office365_server.list_messages("kim@contoso.test", "INBOX")) == 1
    assert proxy.events == [("throttle", "APPEND", 1)]


def test_starttls_passes_through_unparsed(source_server, certs, fault_proxy, closing):
    _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    client = closing(imaplib.IMAP4(proxy.host, proxy.port, timeout=10))
    client.starttls(ssl.create_default_context(cafile=certs.ca_cert))
    client.login("pat", "pw")
    assert client.noop()[0] == "OK"
    assert proxy.stats["command STARTTLS"] == 1
    assert proxy.stats["command LOGIN"] == 0


def test_stop_closes_open_connections(source_server, fault_proxy, closing):
    _user(source_server)
    proxy = fault_proxy(source_server.imap_port)
    client = _imap(proxy, closing)
    proxy.stop()
    with pytest.raises(imaplib.IMAP4.abort):
        client.noop()


class _RenameUidlRefuseQuit(Rewrite):
    """Client lines: UIDL renamed, QUIT cut; server lines: +OK becomes +YES."""

    made = 0

    def __init__(self):
        type(self).made += 1

    def client(self, unit):
        if unit.upper().startswith(b"QUIT"):
            raise Cut("no QUIT")
        return b"X" + unit if unit.upper().startswith(b"UIDL") else unit

    def server(self, unit):
        return b"+YES" + unit[3:] if unit.startswith(b"+OK") else unit


def test_rewrite_raw_lines_both_ways_and_cut(source_server, fault_proxy, closing):
    _user(source_server, messages=2, size=100)
    _RenameUidlRefuseQuit.made = 0
    proxy = fault_proxy(source_server.pop3_port, imap=False, rewrite=_RenameUidlRefuseQuit)
    sock = closing(socket.create_connection((proxy.host, proxy.port), timeout=10))
    replies = [_read_until(sock, b"\r\n")]
    for command in (b"USER pat", b"PASS pw", b"UIDL", b"DELE 1"):
        sock.sendall(command + b"\r\n")
        replies.append(_read_until(sock, b"\r\n"))
    sock.sendall(b"QUIT\r\n")
    assert _read_to_eof(sock) == b""  # no reply to QUIT: it never reached the server
    assert [reply[:4] for reply in replies] == [b"+YES", b"+YES", b"+YES", b"-ERR", b"+YES"]
    assert len(_pop3_list(source_server)) == 2  # so the DELE was not committed
    again = closing(socket.create_connection((proxy.host, proxy.port), timeout=10))
    assert _read_until(again, b"\r\n").startswith(b"+YES")
    assert _RenameUidlRefuseQuit.made == 2  # one Rewrite per connection
    assert proxy.events_of("cut") == [("c2s", 1)]
    assert ("c2s", 1) in proxy.events_of("rewrite")
    assert ("s2c", 1) in proxy.events_of("rewrite")


def _pop3_list(server):
    pop = poplib.POP3(server.host, server.pop3_port, timeout=10)
    try:
        pop.user("pat")
        pop.pass_("pw")
        return pop.list()[1]
    finally:
        pop.quit()


class _BlankBodyOfUid2(Rewrite):
    """Whole IMAP responses: UID 2's body FETCH answered without the body; a command line
    renamed so the server refuses it."""

    seen: list[bytes] = []
    _BODY = re.compile(rb"^\* (\d+) FETCH \(.*\bUID 2\b.*BODY\[\] \{(\d+)\}\r\n")

    def client(self, unit):
        return unit.replace(b" NOOP", b" NOTHING")

    def server(self, unit):
        body = self._BODY.match(unit)
        if body:
            self.seen.append(unit)
            return b"* %s FETCH (UID 2)\r\n" % body[1]
        return unit


def test_rewrite_whole_imap_responses_and_command_lines(source_server, fault_proxy,
                                                       closing):
    _user(source_server, messages=3, size=30_000)
    _BlankBodyOfUid2.seen = []
    proxy = fault_proxy(source_server.imap_port, rewrite=_BlankBodyOfUid2)
    client = _imap(proxy, closing)
    client.select("INBOX")
    typ, data = client.uid("FETCH", "1:3", "(UID BODY.PEEK[])")
    assert typ == "OK"
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert len(bodies) == 2 and all(len(body) > 30_000 for body in bodies)
    assert b"(UID 2)" in [item for item in data if not isinstance(item, tuple)][1]
    [unit] = _BlankBodyOfUid2.seen  # the rewrite saw the response whole: line, literal, ")"
    assert len(unit) > 30_000 and unit.endswith(b")\r\n")
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        client.noop()
    assert client.select("INBOX")[0] == "OK"
    assert proxy.stats["command NOTHING"] == 1  # the proxy parses what it forwards


def test_rewritten_append_literals_get_their_new_size(source_server, fault_proxy, closing):
    """Synchronizing (imaplib) and LITERAL+ APPENDs alike: the server stores the header
    plus the message, and its RFC822.SIZE counts both."""
    user = _user(source_server)
    scanner = AddHeader()
    proxy = fault_proxy(source_server.imap_port, rewrite=scanner)
    client = _imap(proxy, closing)
    assert client.append("INBOX", None, None, b"Subject: sync\r\n\r\n" + b"s" * 70_000)[0] == "OK"
    sock = _raw(proxy, closing)
    plus = [b"Subject: plus %d\r\n\r\nbody\r\n" % i for i in range(2)]
    sock.sendall(b"b1 LOGIN pat pw\r\n" + b"".join(
        b"b%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m) for i, m in enumerate(plus, 2)))
    assert b"b3 OK" in _read_until(sock, b"b3 ")
    stored = source_server.list_messages(user, "INBOX")
    assert [unscanned(m.raw) for m in stored] == [
        b"Subject: sync\r\n\r\n" + b"s" * 70_000, *plus]
    assert [m.size for m in stored] == [len(HEADER) + len(unscanned(m.raw)) for m in stored]
    assert scanner.added == 3 and proxy.stats["rewrite"] == 3


def test_a_refused_held_literal_swallows_the_rest_of_its_command(source_server, fault_proxy,
                                                                  closing):
    """The proxy said "+" for the server, which then refuses the APPEND: the client gets
    the refusal, and what it sent after the literal never reaches the server."""
    user = _user(source_server)
    proxy = fault_proxy(source_server.imap_port, rewrite=AddHeader())
    sock = _raw(proxy, closing)
    sock.sendall(b"a1 LOGIN pat pw\r\n")
    _read_until(sock, b"a1 OK")
    sock.sendall(b"a2 APPEND Nowhere {5}\r\n")
    assert _read_until(sock, b"\r\n") == b"+ held by the proxy\r\n"
    sock.sendall(b"hello\r\n")
    refused = _read_until(sock, b"a2 ")
    assert b"a2 NO [TRYCREATE]" in refused and b"BAD" not in refused
    sock.sendall(b"a3 APPEND INBOX {5}\r\n")
    assert _read_until(sock, b"\r\n") == b"+ held by the proxy\r\n"
    sock.sendall(b"fine!\r\na4 NOOP\r\n")
    replies = _read_until(sock, b"a4 ")
    assert b"a3 OK" in replies and b"a4 OK" in replies and b"BAD" not in replies
    assert b"\r\n+" not in b"\r\n" + replies  # the server's own "+" was not passed on
    assert [m.raw for m in source_server.list_messages(user, "INBOX")] == [HEADER + b"fine!"]


def test_schedules_are_deterministic():
    a, b, c = Schedule(rate=0.3, seed=7), Schedule(rate=0.3, seed=7), Schedule(rate=0.3, seed=8)
    run_a = [a.next()[1] for _ in range(200)]
    assert run_a == [b.next()[1] for _ in range(200)]
    assert run_a != [c.next()[1] for _ in range(200)]
    assert 30 < sum(run_a) < 90
    exact = Schedule(nth=[3, 7])
    assert [n for n, fire in (exact.next() for _ in range(10)) if fire] == [3, 7]
