"""PST -> archive -> the Exchange look-alike, through the real `migrator` entry point: what
an admin does with an old Outlook data file (`kind = "pst"`)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter

import pytest

from migrator.errors import ExitStatus
from migrator.sources.files.pst import open_pst
from tests.cli_runner import run_cli
from tests.integration.import_world import file_source, import_config, rows
from tests.integration.pst_tools import DATA
from tests.integration.push_world import MAILBOX, target_block, target_view

pytestmark = pytest.mark.world
pytest.importorskip("pypff")
SAMPLE = DATA / "testPST.pst"


def expected_from_the_pst() -> Counter[tuple[str, frozenset[str], object]]:
    """(sha256, flags, INTERNALDATE) of every e-mail, read straight from the PST."""
    source = open_pst(SAMPLE)
    found = Counter((hashlib.sha256(m.read()).hexdigest(), frozenset(m.flags), m.internaldate)
                    for folder in source.folders() for m in source.messages(folder))
    source.close()
    return found


@pytest.mark.usefixtures("push_secrets")
def test_a_pst_is_imported_once_then_pushed_and_migrated_to_exchange(o365, oauth_service,
                                                                      certs, tmp_path):
    target = target_block(o365.imaps_port, certs.ca_cert, oauth_service)
    config = import_config(tmp_path, {"erin": file_source("pst", SAMPLE)}, target=target)

    first = run_cli("-c", config, "--json", "pull", "erin")
    again = run_cli("-c", config, "--json", "pull", "erin")
    assert first.status == again.status == ExitStatus.OK, first.stderr + again.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1])["fetched"] == 7
    assert json.loads(again.stdout.strip().splitlines()[-1]).get("fetched", 0) == 0
    archived = rows(tmp_path / "archive", "erin")
    assert {name: len(found) for name, found in archived.items()} == {"hong-thai.nguyen": 7}
    assert {sha for sha, *_ in archived["hong-thai.nguyen"]} == \
        {sha for sha, _, _ in expected_from_the_pst()}  # the bytes the PST rebuilds to

    pushed = run_cli("-c", config, "push", "erin")
    assert pushed.status == ExitStatus.OK, pushed.stderr
    at_target = target_view(o365, MAILBOX)
    assert set(at_target) == {"hong-thai.nguyen"}
    stored = Counter((e.sha256, e.flags, e.internaldate) for e in at_target["hong-thai.nguyen"]
                     .elements())
    assert stored == expected_from_the_pst()  # the rebuilt bytes, flags and dates, each once

    migrated = run_cli("-c", config, "migrate", "erin")  # pull, push and verify: all done
    assert migrated.status == ExitStatus.OK, migrated.stderr
    assert "pulled 0, pushed 0" in migrated.stdout


def test_the_same_pst_imported_again_elsewhere_adds_no_blob(tmp_path):
    """Same PST, same bytes: a second account importing it stores nothing new (SHA-256)."""
    config = import_config(tmp_path, {"erin": file_source("pst", SAMPLE),
                                      "copy": file_source("pst", SAMPLE)})
    assert run_cli("-c", config, "pull", "erin").status == ExitStatus.OK
    blobs = sorted(p.name for p in (tmp_path / "archive").rglob("*.eml"))
    assert run_cli("-c", config, "pull", "copy").status == ExitStatus.OK
    assert sorted(p.name for p in (tmp_path / "archive").rglob("*.eml")) == blobs
    assert len(blobs) == 7
    assert sorted(r[0] for r in rows(tmp_path / "archive", "copy")["hong-thai.nguyen"]) == \
        sorted(r[0] for r in rows(tmp_path / "archive", "erin")["hong-thai.nguyen"])


def test_without_libpff_a_pst_import_says_how_to_install_it(tmp_path, monkeypatch):
    config = import_config(tmp_path, {"erin": file_source("pst", SAMPLE)})
    monkeypatch.setitem(sys.modules, "pypff", None)

    result = run_cli("-c", config, "pull", "erin")

    assert result.status == ExitStatus.CONFIG
    assert "pip install 'migrator[pst]'" in result.stderr
    assert "Traceback" not in result.stderr
