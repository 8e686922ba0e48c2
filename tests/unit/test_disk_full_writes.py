"""Writes outside the manifest and the blobs (token cache, batch reports, the log file) on a
full disk: one line and exit 10 (STORAGE), never a traceback. /dev/full answers every write
with ENOSPC, a full disk on demand."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from migrator import durable
from migrator.auth import TokenCacheFile
from migrator.cli.batch_reports import write_reports
from migrator.errors import ExitStatus, StorageError
from tests.cli_runner import run_cli, write_config

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def _write_to_dev_full(final: str | Path, payload: bytes, **_: object) -> None:
    """atomic_write as it goes on a full disk: the temp file's write fails with ENOSPC."""
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        durable.write_all(fd, payload)
    finally:
        os.close(fd)


def test_token_cache_that_cannot_be_saved_is_a_storage_error(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("migrator.auth.atomic_write", _write_to_dev_full)
    cache = TokenCacheFile(tmp_path / "tokens" / "bob.json")
    cache.cache.has_state_changed = True

    with pytest.raises(StorageError, match=r"cannot save token cache .*no space left") as raised:
        cache.save()
    assert raised.value.exit_status == ExitStatus.STORAGE


def test_batch_report_that_cannot_be_written_is_a_storage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("migrator.cli.batch_reports.atomic_write", _write_to_dev_full)
    with pytest.raises(StorageError, match=r"cannot write batch report .*no space left"):
        write_reports(tmp_path / "reports", [], datetime(2026, 1, 2, 3, 4, 5))


def test_a_log_file_on_a_full_disk_is_one_warning_not_a_traceback_per_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = write_config(tmp_path, f'[archive]\npath = "{tmp_path / "archive"}"\n')

    result = run_cli("-c", config, "--log-file", "/dev/full", "verify", "--archive")

    stderr = result.stderr + capsys.readouterr().err  # logging's own complaints go there
    assert result.status == ExitStatus.OK, stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr
    warnings = [line for line in stderr.splitlines() if "/dev/full" in line]
    assert len(warnings) == 1 and "No space left" in warnings[0], stderr


def test_a_full_disk_is_recognised_however_it_is_worded() -> None:
    import errno
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from migrator.diskfull import full_reason

    full = sqlite3.OperationalError("database or disk is full")
    wrapped = OperationalError("INSERT ...", {}, full)
    assert full_reason(wrapped) == "no space left on device"
    assert full_reason(OSError(errno.EDQUOT, "Disk quota exceeded")) == "no space left on device"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("writer thread failed") from exc
    except RuntimeError as outer:
        assert full_reason(outer) == "no space left on device"
    assert "disk I/O error" in (full_reason(sqlite3.OperationalError("disk I/O error")) or "")
    assert full_reason(OSError(errno.EACCES, "Permission denied")) is None
    assert full_reason(sqlite3.OperationalError("database is locked")) is None
