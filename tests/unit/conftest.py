"""Fixtures shared by unit tests."""

from __future__ import annotations

import pytest

from migrator import retry as retry_module


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the retry helper is asked for, none waited, no jitter added."""
    asked: list[float] = []

    def record(seconds: float, stop: object = None, sleep: object = None) -> bool:
        asked.append(seconds)
        return True

    monkeypatch.setattr(retry_module, "wait_unless_stopped", record)
    monkeypatch.setattr(retry_module.random, "uniform", lambda low, high: low)
    return asked
