"""Batch CSV rows merged with the base config; bad rows isolated; no literal secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator import config
from migrator.batchfile import load_batch
from migrator.errors import ConfigError
from tests.cli_runner import write_config

BASE = """
[archive]
path = "archive"

[batch]
parallel = 3

[batch.source]
kind = "imap"
host = "imap.old.example"
connections = 1

[batch.target]
kind = "office365"
connections = 2

[batch.target.oauth]
flow = "client_credentials"
client_id = "app"
client_secret = "env:APP_SECRET"
"""

HEADER = ("account,source_kind,source_host,source_port,source_user,source_secret,target_user,"
          "exclude\n")


def load(tmp_path: Path, rows: str, base: str = BASE):  # type: ignore[no-untyped-def]
    settings = config.load(write_config(tmp_path, base))
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(HEADER + rows)
    return settings, load_batch(csv_file, settings)


def test_rows_merge_with_base_defaults(tmp_path: Path) -> None:
    settings, rows = load(tmp_path, ",,,,alice,env:ALICE_PW,alice@contoso.com,Trash;Junk*\n"
                                    "bob,pop3,pop.example,1995,bob,file:/s/bob,bob@contoso.com,\n")
    assert settings.batch.parallel == 3
    alice, bob = rows
    assert alice.error is None and alice.account is not None
    assert alice.name == "alice"
    assert alice.account.source.host == "imap.old.example"
    assert alice.account.source.connections == 1
    assert alice.account.source.exclude == ("Trash", "Junk*")
    assert alice.account.target is not None
    assert alice.account.target.username == "alice@contoso.com"
    assert alice.account.target.connections == 2
    assert bob.account is not None and bob.account.source.kind == "pop3"
    assert (bob.account.source.host, bob.account.source.port) == ("pop.example", 1995)
    assert bob.account.source.password is not None
    assert bob.account.source.password.describe() == "file:/s/bob"


def test_literal_password_in_csv_is_refused_for_that_row_only(tmp_path: Path) -> None:
    _, rows = load(tmp_path, "a,,,,alice,hunter2,alice@c.com,\nb,,,,bob,env:B,bob@c.com,\n")
    assert rows[0].account is None and rows[0].error is not None
    assert "line 2: source_secret must be a reference" in rows[0].error
    assert "hunter2" not in rows[0].error
    assert rows[1].account is not None


def test_bad_rows_are_reported_against_their_line(tmp_path: Path) -> None:
    _, rows = load(tmp_path, "a,smtp,,,alice,env:A,a@c.com,\nb,,,,bob,,bob@c.com,\n"
                             "c,,,x,carol,env:C,c@c.com,\na,,,,dup,env:D,d@c.com,\n")
    errors = [row.error or "" for row in rows]
    assert "line 2.source.kind: must be one of" in errors[0]
    assert "line 3.source.password: is required" in errors[1]
    assert "line 4: source_port must be a number" in errors[2]
    assert "account 'a' appears twice" in errors[3]


def test_unknown_column_is_a_clear_error(tmp_path: Path) -> None:
    settings = config.load(write_config(tmp_path, BASE))
    csv_file = tmp_path / "users.csv"
    csv_file.write_text("user,password\nalice,x\n")
    with pytest.raises(ConfigError, match="unknown or missing header columns"):
        load_batch(csv_file, settings)


def test_sample_batch_csv_loads(tmp_path: Path) -> None:
    samples = Path(__file__).parents[2] / "sample_configs"
    settings = config.load(samples / "batch-base.toml")
    rows = load_batch(samples / "batch.csv", settings)
    assert rows and all(row.error is None for row in rows), [r.error for r in rows]


def test_a_port_out_of_range_in_the_csv_is_refused_for_that_row(tmp_path: Path) -> None:
    _, rows = load(tmp_path, "a,,,0,alice,env:A,a@c.com,\nb,,,70000,bob,env:B,b@c.com,\n"
                             "c,,,65535,carol,env:C,c@c.com,\n")
    assert rows[0].account is None and rows[1].account is None
    assert "line 2: source_port must be a number from 1 to 65535, got '0'" in (rows[0].error or "")
    assert "line 3: source_port must be a number from 1 to 65535, got '70000'" \
        in (rows[1].error or "")
    assert rows[2].account is not None and rows[2].account.source.port == 65535
