"""POP3 reply reading: every byte kept but the stuffing and the final "." line."""

from __future__ import annotations

import io

import pytest

from migrator.errors import ConnectionLost
from migrator.sources.pop3 import announced_size
from migrator.sources.pop3_wire import BUFFER, Pop3Error, ReplyReader, unstuff


def reader(data: bytes, chunk: int) -> ReplyReader:
    """A reader fed `chunk` bytes at a time, so markers straddle reads."""
    stream = io.BytesIO(data)
    return ReplyReader(lambda view: stream.readinto(view[:chunk]))


CHUNKS = [1, 2, 3, 4, 5, 7, 64, 1 << 20]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(("wire", "body"), [
    (b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
    (b"a\nb\n.\n", b"a\nb\n"),  # a server that sends bare LF: kept as bare LF
    (b"a\r\nb\n.\r\n", b"a\r\nb\n"),  # mixed line endings, each line keeps its own
    (b"..dot\r\n...two\r\n..\r\nend\r\n.\r\n", b".dot\r\n..two\r\n.\r\nend\r\n"),
    (b"..\n.\n", b".\n"),
    (b".\r\n", b""),  # an empty message
    (b".\n", b""),
    (b"bare\rcr\r\n.\r\n", b"bare\rcr\r\n"),  # a bare CR is data
    (b"x\r\n.x\r\n.\r\n", b"x\r\nx\r\n"),  # an unstuffed dot line from a sloppy server
    (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
    (b"a\r\n.\rb\r\n.\r\n", b"a\r\n\rb\r\n"),
])
def test_body_is_unstuffed_with_line_endings_as_sent(wire: bytes, body: bytes,
                                                     chunk: int) -> None:
    assert reader(b"+OK\r\n" + wire, chunk).status() == b"+OK\r\n"
    data = reader(b"+OK\r\n" + wire, chunk)
    data.status()
    assert data.body() == body


@pytest.mark.parametrize("chunk", CHUNKS)
def test_pipelined_replies_are_read_one_after_another(chunk: int) -> None:
    wire = (b"+OK 1\r\nfirst\r\n..\r\n.\r\n-ERR no such message\r\n"
            b"+OK 3\r\n.\r\n+OK 4\nlast\n.\n+OK bye\r\n")
    replies = reader(wire, chunk)
    replies.status()
    assert replies.body() == b"first\r\n.\r\n"
    with pytest.raises(Pop3Error, match="no such message"):
        replies.status()
    replies.status()
    assert replies.body() == b""
    replies.status()
    assert replies.body() == b"last\n"
    assert replies.status() == b"+OK bye\r\n"


@pytest.mark.parametrize("wire", [b"+OK\r\npartial line", b"+OK\r\nline\r\n", b"+OK\r\n.",
                                  b"+OK\r\nline\r\n.\r"])
def test_a_reply_cut_short_is_a_lost_connection(wire: bytes) -> None:
    replies = reader(wire, 3)
    replies.status()
    with pytest.raises(ConnectionLost):
        replies.body()


def test_large_message_in_small_chunks_is_exact() -> None:
    lines = [b"." * (i % 5) + b"x" * (i % 97) + (b"\r\n" if i % 3 else b"\n")
             for i in range(5000)]
    original = b"".join(lines)
    stuffed = b"".join(b"." + line if line.startswith(b".") else line for line in lines)
    replies = reader(b"+OK\r\n" + stuffed + b".\r\n+OK\r\n", 4093)
    replies.status()
    assert replies.body() == original
    assert replies.status() == b"+OK\r\n"


def test_garbage_instead_of_a_status_line() -> None:
    with pytest.raises(ConnectionLost, match="unexpected reply"):
        reader(b"* OK IMAP4rev1\r\n", 64).status()


@pytest.mark.parametrize(("stuffed", "plain"), [
    (b"", b""), (b"..", b"."), (b"a\n..b\n", b"a\n.b\n"), (b"...\r\n", b"..\r\n"),
])
def test_unstuff(stuffed: bytes, plain: bytes) -> None:
    assert unstuff(stuffed) == plain


def test_the_buffer_grows_for_a_big_message_and_shrinks_after_it() -> None:
    """One buffer is reused for every read; a message larger than it must not leave the
    session holding that much memory for the rest of the maildrop."""
    big = b"y" * 70 + b"\r\n"
    message = big * (3 * BUFFER // len(big))
    wire = b"+OK\r\nsmall\r\n.\r\n+OK\r\n" + message + b".\r\n" + b"+OK\r\nsmall\r\n.\r\n" * 50
    replies = reader(wire, 1 << 16)
    replies.status()
    assert replies.body() == b"small\r\n"
    replies.status()
    assert replies.body() == message  # read whole: the buffer grew to three times its size
    assert len(replies.buffer) == BUFFER  # and is back to its usual size once it is done
    for _ in range(50):
        replies.status()
        assert replies.body() == b"small\r\n"


def test_an_announced_size_makes_the_buffer_once() -> None:
    """RETR's "+OK n octets" sizes the buffer for a big message up front; a wrong figure
    (too small, or absurdly large) still gives the exact message."""
    message = (b"z" * 98 + b"\r\n") * (3 * BUFFER // 100)
    for announced in (len(message), 10, 3 * len(message)):
        replies = reader(b"+OK\r\n" + message + b".\r\n+OK\r\nsmall\r\n.\r\n", 1 << 16)
        replies.status()
        sizes = []
        real_resize = replies._resize

        def resize(size: int, real=real_resize, sizes=sizes) -> None:
            sizes.append(size)
            real(size)

        replies._resize = resize  # type: ignore[method-assign]
        assert replies.body(announced) == message
        grown = [size for size in sizes if size > BUFFER]
        if announced == len(message):
            assert len(grown) == 1, sizes
        replies.status()
        assert replies.body(5) == b"small\r\n"
        assert len(replies.buffer) == BUFFER


@pytest.mark.parametrize(("status", "size"), [
    (b"+OK 120 octets\r\n", 120), (b"+OK 7\r\n", 7), (b"+OK\r\n", 0),
    (b"+OK message follows\r\n", 0), (b"+OK -5 octets\r\n", 0),
])
def test_announced_size(status: bytes, size: int) -> None:
    assert announced_size(status) == size
