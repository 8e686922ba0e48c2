"""Shared by the per-account commands: choose accounts, lock and isolate each, render results."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from migrator.archive.locks import account_lock
from migrator.cli.context import Context
from migrator.cli.progress import end_progress
from migrator.config import Account
from migrator.engine.results import JobResult
from migrator.errors import ConnectionLost, ExitStatus, MigratorError, Scope

Job = Callable[[Context, Account], JobResult]


def selected_accounts(ctx: Context) -> list[Account]:
    """The accounts named on the command line (or --all); unknown names fail up front.

    That ACCOUNT or --all was given (not both) is checked with the other options, in
    `migrator.cli.options.check`.
    """
    settings = ctx.settings()
    names = list(settings.accounts) if ctx.args.all else ctx.args.accounts
    return [settings.account(name) for name in names]


def run_each(ctx: Context, command: str, job: Job) -> list[JobResult]:
    """Run `job` per account under its lock; an account-scoped error spoils only that account.

    The lock is taken before the manifest is opened, so a run refused for the lock never
    touches the manifest. A dry run takes none: it only reads, and creating or rewriting a
    lock file is a write it must not make (nor should a preview make a cron run wait). At the
    end any progress bar a failed job left is cleared, so the outcome lines that follow are
    not written into it.
    """
    results = []
    for account in selected_accounts(ctx):
        try:
            lock = (contextlib.nullcontext() if ctx.dry_run
                    else account_lock(ctx.settings().archive.path, account.name))
            with lock:
                results.append(job(ctx, account))
        except MigratorError as exc:
            if exc.scope is not Scope.ACCOUNT:
                raise
            results.append(JobResult(account.name, command, error=error_line(account, exc),
                                     exit_status=exc.exit_status))
    end_progress(ctx.emit)
    return results


def error_line(account: Account, exc: MigratorError) -> str:
    """The one line an account's failure gets: it names the account (a lost connection's
    own words, `command: LIST => socket error: EOF`, name neither account nor failure)."""
    prefix = f"{account.name}: "
    text = (str(exc) or exc.__class__.__name__).removeprefix(prefix)
    if isinstance(exc, ConnectionLost) and "connection lost" not in text:
        text = f"connection lost for good: {text}"
    return prefix + text


def counts_line(result: JobResult) -> str:
    """The default one-line outcome: the job's outcome and all its counts."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    return f"{result.command} {result.account}: {result.outcome}" + (
        f" ({counts})" if counts else "")


def render(ctx: Context, results: list[JobResult],
           summary_line: Callable[[JobResult], str] = counts_line,
           silent_dry_run: bool = False) -> int:
    """Print each account's outcome (failures to stderr) and return the worst exit status.

    `silent_dry_run`: the command already showed its plan, so a dry run prints no outcome.
    """
    for result in results:
        if result.error:
            ctx.env.stderr.write(f"migrator: error: {result.error}\n")
        for line in result.failures:
            ctx.env.stderr.write(f"migrator: failed: {result.account}: {line}\n")
        planned = silent_dry_run and ctx.args.dry_run
        if ctx.args.json:
            if not planned:
                ctx.out_json(result.as_dict())
        elif ctx.args.quiet:
            continue
        elif result.counts.get("no_target"):
            ctx.out(f"{result.command} {result.account}: skipped (no target configured)")
        elif not planned:
            ctx.out(summary_line(result))
    return worst_status(results)


def worst_status(results: list[JobResult]) -> int:
    return max((result.exit_status for result in results), default=ExitStatus.OK)
