"""What a job reports when it ends: counts, failures with reasons, and an outcome."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ExitStatus


@dataclass
class JobResult:
    """Result of one job (pull, push, verify, ...) on one account."""

    account: str
    command: str
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # one line each, naming the message
    error: str | None = None  # why the whole job stopped early, if it did
    exit_status: ExitStatus = ExitStatus.OK

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "failed"
        return "partial" if self.failures else "ok"

    def fail(self, line: str) -> None:
        self.failures.append(line)
        if self.exit_status == ExitStatus.OK:
            self.exit_status = ExitStatus.PARTIAL

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "command": self.command, "outcome": self.outcome,
                **dict(self.counts), "failures": list(self.failures), "error": self.error}
