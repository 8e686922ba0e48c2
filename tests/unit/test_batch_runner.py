"""The batch runner isolates mailboxes and turns every ending into a reported outcome."""

from __future__ import annotations

import csv
import json
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError

from migrator import config
from migrator.archive.db import open_manifest
from migrator.archive.manifest import RunRow
from migrator.archive.runs import record_run
from migrator.batchfile import BatchRow
from migrator.cli.batch_reports import write_reports
from migrator.config import Account
from migrator.engine.batch import batch_status, run_batch
from migrator.engine.events import discard
from migrator.engine.results import JobResult
from migrator.errors import AuthError, ExitStatus, LockedError


def account(name: str) -> Account:
    endpoint = config.Endpoint(kind="imap", host="127.0.0.1", port=1,
                               password=config.Secret("env:SECRET_" + name))
    return Account(name, endpoint)


def job(account: Account) -> list[JobResult]:
    if account.name == "bad-password":
        raise AuthError(f"{account.name}: login refused")
    if account.name == "crashes":
        raise ZeroDivisionError("bug in one mailbox")
    if account.name == "locked":
        raise LockedError(f"{account.name}: another run")
    migrate = JobResult(account.name, "migrate",
                        Counter(pull_fetched=3, pull_bytes=300, push_pushed=3, verify_missing=0))
    if account.name == "partial":
        migrate.fail("pull: INBOX UID 7: server returned nothing")
    return [migrate]


def rows(*names: str) -> list[BatchRow]:
    return [BatchRow(line, name, account(name)) for line, name in enumerate(names, start=2)]


def test_each_mailbox_ends_on_its_own() -> None:
    batch = rows("ok1", "bad-password", "crashes", "locked", "partial", "ok2")
    batch.append(BatchRow(9, "invalid", error="users.csv: line 9: bad port"))
    outcomes = run_batch(batch, job, parallel=3, emit=discard)
    states = {o.account: o.state for o in outcomes}
    assert states == {"ok1": "complete", "bad-password": "failed", "crashes": "failed",
                      "locked": "locked", "partial": "partial", "ok2": "complete",
                      "invalid": "invalid"}
    by_name = {o.account: o for o in outcomes}
    assert by_name["bad-password"].exit_status == ExitStatus.AUTH
    assert "ZeroDivisionError" in (by_name["crashes"].error or "")
    assert by_name["ok1"].verified is True and by_name["ok1"].counts["pull_fetched"] == 3
    assert [o.line for o in outcomes] == [2, 3, 4, 5, 6, 7, 9]
    assert batch_status(outcomes) == ExitStatus.PARTIAL
    assert batch_status([by_name["ok1"], by_name["ok2"]]) == ExitStatus.OK


def test_parallelism_is_bounded() -> None:
    running, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def slow(account: Account) -> list[JobResult]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(0.05)
        with lock:
            running -= 1
        return [JobResult(account.name, "pull")]

    run_batch(rows(*[f"m{i}" for i in range(12)]), slow, parallel=4, emit=discard)
    assert 1 <= peak <= 4


def test_reports_hold_counts_and_reasons_but_no_secrets(tmp_path: Path) -> None:
    outcomes = run_batch(rows("ok1", "bad-password", "partial"), job, parallel=2, emit=discard)
    csv_path, json_path = write_reports(tmp_path, outcomes, datetime(2026, 11, 21, 3, 0))
    table = list(csv.DictReader(csv_path.open()))
    assert [r["state"] for r in table] == ["complete", "failed", "partial"]
    assert table[0]["archived"] == "3" and table[0]["verified"] == "yes"
    assert table[0]["pushed"] == "3" and table[0]["archived_bytes"] == "300"
    assert "login refused" in table[1]["error"]
    assert "UID 7" in table[2]["failures"] and table[2]["failed"] == "1"
    report = json.loads(json_path.read_text())
    assert len(report["mailboxes"]) == 3
    for text in (csv_path.read_text(), json_path.read_text()):
        assert "SECRET_" not in text


def test_reports_written_in_the_same_second_keep_each_its_own_name(tmp_path: Path) -> None:
    started = datetime(2026, 12, 3, 14, 0, 5)
    first = write_reports(tmp_path, run_batch(rows("ok1"), job, 1, discard), started)
    second = write_reports(tmp_path, run_batch(rows("partial"), job, 1, discard), started)

    assert [path.name for path in first] == ["batch-20261203-140005.csv",
                                             "batch-20261203-140005.json"]
    assert [path.name for path in second] == ["batch-20261203-140005_2.csv",
                                              "batch-20261203-140005_2.json"]
    assert sorted(tmp_path.glob("batch-*.json")) == [first[1], second[1]]  # in run order
    for (csv_path, json_path), account in ((first, "ok1"), (second, "partial")):
        assert [row["account"] for row in csv.DictReader(csv_path.open())] == [account]
        assert json.loads(json_path.read_text())["mailboxes"][0]["account"] == account


def test_a_full_disk_in_one_mailbox_is_a_storage_failure_of_the_batch() -> None:
    import errno
    import sqlite3

    def full(account: Account) -> list[JobResult]:
        if account.name == "full":  # what SQLite says when the disk is full, not yet mapped
            raise sqlite3.OperationalError("database or disk is full")
        if account.name == "nospace":
            raise OSError(errno.ENOSPC, "No space left on device")
        return job(account)

    outcomes = run_batch(rows("ok1", "full", "nospace"), full, parallel=1, emit=discard)

    failed = [o for o in outcomes if o.state == "failed"]
    assert [o.exit_status for o in failed] == [ExitStatus.STORAGE, ExitStatus.STORAGE]
    assert all("no space left" in (o.error or "") and "internal error" not in (o.error or "")
               for o in failed)
    assert batch_status(outcomes) == ExitStatus.STORAGE


PARAMETER = "a-message-id-that-must-stay-in-the-database"


def database_error() -> IntegrityError:
    """A real SQLAlchemy IntegrityError, whose text carries the statement and parameters."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            conn.execute(sql("create table blobs (sha256 text primary key, note text)"))
            rows = [{"sha": "same", "note": PARAMETER}] * 2
            conn.execute(sql("insert into blobs values (:sha, :note)"), rows)
    except IntegrityError as exc:
        assert "[parameters:" in str(exc)  # what must not reach a report
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the duplicate insert did not fail")


def test_an_internal_database_error_is_one_line_without_sql_parameters(tmp_path: Path) -> None:
    error = database_error()

    def fails(account: Account) -> list[JobResult]:
        raise error

    [outcome] = run_batch(rows("alice"), fails, parallel=1, emit=discard)
    assert outcome.state == "failed" and outcome.exit_status == ExitStatus.ERROR
    assert outcome.error == ("internal error: IntegrityError: (sqlite3.IntegrityError) "
                             "UNIQUE constraint failed: blobs.sha256")
    csv_path, json_path = write_reports(tmp_path, [outcome], datetime(2026, 12, 3, 7, 0))
    for report in (csv_path.read_text(), json_path.read_text()):
        assert "UNIQUE constraint failed" in report
        assert PARAMETER not in report and "[SQL:" not in report


def test_a_run_record_keeps_one_line_of_an_internal_database_error(tmp_path: Path) -> None:
    """`batch status` shows the runs table's error: no SQL parameters there either."""
    manifest = open_manifest(f"sqlite:///{tmp_path / 'manifest.sqlite'}")
    with pytest.raises(IntegrityError), record_run(manifest, "pull", "alice", "imap"):
        raise database_error()
    with manifest.session() as session:
        [error] = session.scalars(select(RunRow.error)).all()
    manifest.close()
    assert error == "IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: " \
                    "blobs.sha256"
