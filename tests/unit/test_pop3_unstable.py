"""A known UIDL listed with another size: same message, reused UIDL, or unstable content."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import pytest

from migrator.engine.pop3.unstable import describe, sort_suspects
from migrator.sources.pop3 import MaildropEntry, Pop3Error


class Served:
    """RETR answers in turn per message number (a Pop3Session's `retrieve`, no socket)."""

    def __init__(self, answers: dict[int, list[bytes | Pop3Error]]) -> None:
        self.answers = answers
        self.retrs: list[int] = []

    def retrieve(self, numbers: Iterable[int]) -> Iterator[tuple[int, bytes | Pop3Error]]:
        for number in list(numbers):
            self.retrs.append(number)
            yield number, self.answers[number].pop(0)


OLD = b"Message-ID: <m@x>\r\n\r\nold\r\n"
NEW = b"Message-ID: <n@x>\r\n\r\nnew\r\n"
ERR = Pop3Error(b"-ERR gone\r\n")


@pytest.mark.parametrize("answers, verdict, retrs", [
    ([OLD], "same", 1),  # the content archived under the UIDL: nothing to do
    ([NEW, NEW], "fetch", 2),  # other content, twice the same: the UIDL was reused
    ([NEW, OLD + b"x"], "unstable", 2),  # other content at every RETR
    ([ERR], "fetch", 1),  # refused: the pull's own RETR records it
    ([NEW, ERR], "fetch", 2),
])
def test_sort_suspects(answers: list[bytes | Pop3Error], verdict: str, retrs: int) -> None:
    session = Served({1: list(answers)})
    item = MaildropEntry(1, 999, "u1")
    verdicts = sort_suspects(session, [item],  # type: ignore[arg-type]
                             {"u1": {hashlib.sha256(OLD).hexdigest()}})
    got = {"same": verdicts.same, "fetch": verdicts.fetch,
           "unstable": [entry for entry, _ in verdicts.unstable]}
    assert got[verdict] == [item] and sum(map(len, got.values())) == 1
    assert len(session.retrs) == retrs


@pytest.mark.parametrize("data, name", [
    (NEW, "<n@x>"),
    (b"Subject: hello\r\n\r\nbody", "Subject: hello"),
    (b"From: a@b\r\n\r\nbody", "no Message-ID or Subject"),
])
def test_describe(data: bytes, name: str) -> None:
    assert describe(data) == name
