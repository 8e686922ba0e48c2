"""A batch's mailboxes as a queue in the manifest's PostgreSQL database, shared by workers on
any number of hosts: row leases taken with `SELECT ... FOR UPDATE SKIP LOCKED`.

Why row leases and not a task-queue library: the manifest already is the one PostgreSQL
database every worker must reach, so the queue needs no new dependency and no daemon of its
own, and a mailbox's state lives in one transactional place with its messages.

A claim sets `state = running`, the worker's name, a lease (`lease_expires_at`, by the
database's clock, so the hosts' clocks do not matter) and bumps `lease_token`. The worker
renews its leases while it works; a worker that dies stops renewing, its lease expires, and
the next claim takes the item over (at most `max_attempts` claims; then it is `failed`).
Every write of a result names the token it holds, so a worker that lost its lease can never
record over the new owner's result (fencing). `work_claims` keeps each claim and its end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError

from migrator.archive.db import Manifest
from migrator.errors import ConfigError

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
PENDING = (QUEUED, RUNNING)
NOW = "timezone('utc', clock_timestamp())"  # the database's clock, naive UTC like the manifest


@dataclass(frozen=True)
class NewItem:
    """A CSV row to enqueue: `record` holds the row as given (secret references only), or
    None for a row that cannot run, whose `error` is recorded as the item's failure."""

    account: str
    line: int
    record: dict[str, str] | None
    error: str | None = None


@dataclass(frozen=True)
class Lease:
    """A claimed work item; `token` proves the claim when renewing or finishing."""

    item_id: int
    token: int
    batch: str
    pass_number: int
    account: str
    line: int
    source_file: str
    record: dict[str, str] | None
    attempts: int


@dataclass(frozen=True)
class Submitted:
    batch: str
    pass_number: int
    queued: list[str]
    refused: list[tuple[int, str, str]]  # (line, account, error)
    already_pending: list[tuple[str, str]]  # (account, batch holding it)


def require_postgresql(database: str | Manifest, what: str) -> None:
    """The queue lives in PostgreSQL only: SQLite has no row locks to share between hosts.
    Given the URL, it is checked before anything (a SQLite file) is created."""
    if isinstance(database, Manifest):
        backend = database.engine.dialect.name
    else:
        try:
            backend = make_url(database).get_backend_name()
        except ArgumentError:
            backend = "not a database URL"
    if backend != "postgresql":
        raise ConfigError(f"{what} needs a PostgreSQL manifest ([archive] database = "
                          f"\"postgresql+psycopg://...\"); this one is {backend}")


class WorkQueue:
    """The work_items table, through short transactions of its own."""

    def __init__(self, manifest: Manifest, what: str = "the batch queue") -> None:
        require_postgresql(manifest, what)
        # a pool of its own: a heartbeat must never wait behind the mailbox jobs for one of
        # the manifest's connections, or its leases expire while it waits
        self.engine = create_engine(manifest.engine.url, pool_size=2, max_overflow=4)

    def close(self) -> None:
        self.engine.dispose()

    def submit(self, batch: str, source_file: str, items: Sequence[NewItem]) -> Submitted:
        """A new pass of `batch`: every row, except mailboxes still queued or running (in any
        batch: one mailbox is never worked on twice at once)."""
        with self.engine.begin() as conn:
            # one submit at a time, so two cannot both find a mailbox not pending
            conn.execute(text("LOCK TABLE work_items IN SHARE ROW EXCLUSIVE MODE"))
            pass_number = 1 + (conn.execute(text(
                "SELECT max(pass_number) FROM work_items WHERE batch = :b"), {"b": batch})
                .scalar() or 0)
            pending: dict[str, str] = dict(conn.execute(text(
                "SELECT account, batch FROM work_items WHERE state IN ('queued', 'running')"))
                .all())
            result = Submitted(batch, pass_number, [], [], [])
            for item in items:
                if item.account in pending and item.record is None:  # e.g. a row repeated
                    result.refused.append((item.line, item.account, item.error or "invalid"))
                    continue
                if item.account in pending:
                    result.already_pending.append((item.account, pending[item.account]))
                    continue
                state = QUEUED if item.record is not None else FAILED
                conn.execute(text(
                    "INSERT INTO work_items (batch, pass_number, account, line, source_file, "
                    "record, state, lease_token, attempts, submitted_at, finished_at, error) "
                    f"VALUES (:b, :p, :a, :l, :f, :r, :s, 0, 0, {NOW}, "
                    f"CASE WHEN CAST(:r AS text) IS NULL THEN {NOW} END, :e)"),
                    {"b": batch, "p": pass_number, "a": item.account, "l": item.line,
                     "f": source_file, "s": state, "e": item.error,
                     "r": None if item.record is None else json.dumps(item.record)})
                pending[item.account] = batch
                if item.record is None:
                    result.refused.append((item.line, item.account, item.error or "invalid"))
                else:
                    result.queued.append(item.account)
        return result

    def claim(self, worker: str, count: int, lease_seconds: float,
              max_attempts: int) -> list[Lease]:
        """Up to `count` items: queued ones, or running ones whose lease has expired."""
        leases: list[Lease] = []
        with self.engine.begin() as conn:
            rows = conn.execute(text(
                "SELECT id, state, attempts FROM work_items WHERE state = 'queued' OR "
                f"(state = 'running' AND lease_expires_at < {NOW}) ORDER BY id "
                "LIMIT :n FOR UPDATE SKIP LOCKED"), {"n": count}).all()
            for item_id, state, attempts in rows:
                if state == RUNNING:
                    _end_claims(conn, item_id, "expired", "lease_expires_at")
                    if attempts >= max_attempts:
                        _give_up(conn, item_id, attempts)
                        continue
                leases.append(_take(conn, item_id, worker, lease_seconds))
        return leases

    def renew(self, leases: Sequence[Lease], lease_seconds: float) -> list[Lease]:
        """Extend each lease; returns those that were lost (taken over, or ended)."""
        lost = []
        with self.engine.begin() as conn:
            for lease in leases:
                renewed = conn.execute(text(
                    f"UPDATE work_items SET lease_expires_at = {NOW} + make_interval(secs => :s),"
                    f" heartbeat_at = {NOW} WHERE id = :i AND lease_token = :t AND "
                    "state = 'running'"),
                    {"s": lease_seconds, "i": lease.item_id, "t": lease.token}).rowcount
                if not renewed:
                    lost.append(lease)
        return lost

    def finish(self, lease: Lease, state: str, outcome: dict[str, Any],
               error: str | None) -> bool:
        """Record how the mailbox ended; False (nothing written) if the lease was lost."""
        with self.engine.begin() as conn:
            written = conn.execute(text(
                f"UPDATE work_items SET state = :state, outcome = :o, error = :e, "
                f"finished_at = {NOW}, lease_expires_at = NULL WHERE id = :i AND "
                "lease_token = :t AND state = 'running'"),
                {"state": state, "o": json.dumps(outcome), "e": error, "i": lease.item_id,
                 "t": lease.token}).rowcount
            if written:
                _end_claims(conn, lease.item_id, state, NOW, token=lease.token)
        return bool(written)

    def release(self, lease: Lease, after_seconds: float) -> None:
        """Give a lease back without counting the attempt: free for another worker in
        `after_seconds` (time for this process to be gone), still fenced by the token."""
        with self.engine.begin() as conn:
            released = conn.execute(text(
                f"UPDATE work_items SET lease_expires_at = {NOW} + make_interval(secs => :s), "
                "attempts = greatest(attempts - 1, 0) WHERE id = :i AND lease_token = :t AND "
                "state = 'running'"),
                {"s": after_seconds, "i": lease.item_id, "t": lease.token}).rowcount
            if released:
                _end_claims(conn, lease.item_id, "released", "lease_expires_at",
                            token=lease.token)

    def unfinished(self) -> int:
        """Items still queued or running anywhere (a running one may yet be taken over)."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM work_items WHERE state IN ('queued', 'running')"))
                .scalar() or 0)

    def latest_pass(self, batch: str) -> list[dict[str, Any]]:
        """Each mailbox's newest item in `batch`, with its lease's age by the database clock."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT DISTINCT ON (account) account, line, pass_number, state, worker, "
                "attempts, outcome, error, started_at, finished_at, heartbeat_at, "
                f"extract(epoch FROM {NOW} - heartbeat_at) AS heartbeat_age, "
                f"extract(epoch FROM lease_expires_at - {NOW}) AS lease_left "
                "FROM work_items WHERE batch = :b ORDER BY account, pass_number DESC"),
                {"b": batch}).mappings().all()
        found = [dict(row) for row in rows]
        for row in found:
            row["outcome"] = json.loads(row["outcome"]) if row["outcome"] else None
        return sorted(found, key=lambda row: row["line"])


def _take(conn: Connection, item_id: int, worker: str, lease_seconds: float) -> Lease:
    row = conn.execute(text(
        f"UPDATE work_items SET state = 'running', worker = :w, lease_token = lease_token + 1, "
        f"lease_expires_at = {NOW} + make_interval(secs => :s), heartbeat_at = {NOW}, "
        f"started_at = {NOW}, attempts = attempts + 1, outcome = NULL, error = NULL "
        "WHERE id = :i RETURNING lease_token, batch, pass_number, account, line, source_file, "
        "record, attempts"), {"w": worker, "s": lease_seconds, "i": item_id}).one()
    conn.execute(text(
        "INSERT INTO work_claims (work_item_id, lease_token, worker, claimed_at) "
        f"VALUES (:i, :t, :w, {NOW})"), {"i": item_id, "t": row.lease_token, "w": worker})
    return Lease(item_id, row.lease_token, row.batch, row.pass_number, row.account, row.line,
                 row.source_file, json.loads(row.record) if row.record else None,
                 row.attempts)


def _end_claims(conn: Connection, item_id: int, how: str, at: str,
                token: int | None = None) -> None:
    """Close the item's open claim (the one holding `token`, if given) as ended `how`."""
    conn.execute(text(
        f"UPDATE work_claims SET ended = :how, ended_at = (SELECT {at} FROM work_items WHERE "
        "id = :i) WHERE work_item_id = :i AND ended IS NULL"
        + (" AND lease_token = :t" if token is not None else "")),
        {"how": how, "i": item_id, "t": token})


def _give_up(conn: Connection, item_id: int, attempts: int) -> None:
    conn.execute(text(
        f"UPDATE work_items SET state = 'failed', finished_at = {NOW}, lease_expires_at = NULL,"
        " error = :e WHERE id = :i"),
        {"i": item_id, "e": f"its worker stopped {attempts} times while working on it "
                            "(killed, or its host lost); submit the batch again to retry"})

