"""How the push cuts a folder's messages into chunks for its connections."""

from __future__ import annotations

from migrator.engine.push.job import CHUNK, CHUNK_BYTES, _chunks
from migrator.engine.push.rows import Candidate


def candidate(number: int, size: int) -> Candidate:
    return Candidate(number, 1, "0" * 64, size, None, (), None)


def test_chunks_hold_at_most_chunk_messages_and_bytes_and_a_big_message_goes_alone():
    small = [candidate(n, 1000) for n in range(CHUNK + 5)]
    big = [candidate(100 + n, CHUNK_BYTES // 2 + 1) for n in range(3)]
    huge = [candidate(200, 30 << 20)]
    messages = small + big + huge + small[:2]

    chunks = list(_chunks(messages))

    assert [m.id for chunk in chunks for m in chunk] == [m.id for m in messages]  # all, in order
    # the first big one still fits with the five small ones; the others do not fit together
    assert [len(chunk) for chunk in chunks] == [CHUNK, 6, 1, 1, 1, 2]
    assert all(len(c) == 1 or sum(m.size for m in c) <= CHUNK_BYTES for c in chunks)
    assert list(_chunks([])) == []
