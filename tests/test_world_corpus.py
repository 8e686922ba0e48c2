"""Self-tests of the corpus generator: deterministic, and every oddity is there."""
import collections
import re

import pytest

from tests.world.corpus import TRAITS, generate, stdlib_messages


def _header(raw):
    end = raw.find(b"\n\n") if b"\r\n\r\n" not in raw else raw.find(b"\r\n\r\n")
    return raw[:end]


def test_same_seed_same_bytes_other_seed_other_bytes():
    first = generate(seed=5, count=40, max_size=100_000)
    assert first == generate(seed=5, count=40, max_size=100_000)
    assert [m.raw for m in first] != [m.raw for m in generate(seed=6, count=40,
                                                                max_size=100_000)]


def test_every_oddity_is_present(corpus):
    traits = collections.Counter(t for m in corpus for t in m.traits)
    assert all(traits[t] for t in TRAITS), traits
    by_trait = {t: [m for m in corpus if t in m.traits] for t in TRAITS}
    for message in by_trait["multipart"]:
        assert b"Content-Type: multipart/mixed" in message.raw
        assert b"Content-Transfer-Encoding: base64" in message.raw
    assert all(b"=?utf-8?b?" in m.raw for m in by_trait["rfc2047"])
    assert all(re.search(rb"[\x80-\xff]", _header(m.raw)) for m in by_trait["8bit_header"])
    assert all(b"charset=utf-8" in m.raw for m in by_trait["8bit_body"])
    assert all("Grüße".encode("latin-1") in m.raw for m in by_trait["latin1_body"])
    assert all(max(map(len, m.raw.split(b"\n"))) > 1000 for m in by_trait["long_line"])
    assert all(b"\r" not in m.raw for m in by_trait["bare_lf"])
    assert all(b"\nMessage-ID:" not in _header(m.raw) for m in by_trait["no_message_id"])
    assert all(b"\nDate:" not in _header(m.raw) for m in by_trait["no_date"])


def test_duplicated_message_ids_really_repeat(corpus):
    ids = collections.Counter(re.search(rb"\nMessage-ID: (\S+)", _header(m.raw))[1]
                              for m in corpus
                              if "stdlib" not in m.traits and "no_message_id" not in m.traits)
    assert max(ids.values()) >= 2


def test_stdlib_email_test_messages_are_included(corpus):
    shipped = stdlib_messages()
    if not shipped:
        pytest.skip("this interpreter ships no test/test_email/data")
    included = {t for m in corpus for t in m.traits if t.startswith("stdlib:")}
    assert included == {"stdlib:" + name for name, _ in shipped}


def test_sizes_are_capped_for_tests_and_heavy_tailed_for_benchmarks():
    small = generate(seed=1, count=300, max_size=30_000, stdlib=False)
    assert max(len(m.raw) for m in small) < 30_000 + 8_000
    assert min(len(m.raw) for m in small) > 2_000
    big = generate(seed=1, count=12, attachment_rate=0.5, huge_rate=0.0, stdlib=False)
    sizes = sorted(len(m.raw) for m in big)
    assert sizes[0] < 60_000 and sizes[-1] > 1_000_000
    huge = generate(seed=1, count=2, attachment_rate=0.0, huge_rate=1.0, stdlib=False)
    assert 20 * 2**20 < len(huge[1].raw) < 32 * 2**20


def test_flags_folders_and_dates_are_plausible(corpus):
    generated = [m for m in corpus if "stdlib" not in m.traits]
    assert {"INBOX", "Sent", "Drafts"} <= {m.folder for m in generated}
    assert all("\\Draft" in m.flags for m in generated if m.folder == "Drafts")
    assert any("\\Seen" in m.flags for m in generated)
    assert all(m.internaldate.tzinfo is not None for m in corpus)
