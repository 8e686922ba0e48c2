"""`migrator verify --archive`: re-hash every blob and check the manifest points at real data.

`migrator verify ACCOUNT...`: compare each account's archive with its target, folder by folder.

`migrator verify ACCOUNT... --source`: compare each account's archive with its source.
"""

from __future__ import annotations

import argparse
from typing import Any

from migrator.cli.commands.accounts import run_each, selected_accounts, worst_status
from migrator.cli.commands.push import without_target
from migrator.cli.context import Context
from migrator.cli.options import add_account_options
from migrator.cli.verify_source import verify_sources
from migrator.config import Account
from migrator.engine.events import TaskFinished, TaskStarted
from migrator.engine.results import JobResult
from migrator.engine.verify.archive import ArchiveReport, check_archive
from migrator.engine.verify.target import TargetReport, verify_target
from migrator.errors import ExitStatus, UsageError
from migrator.targets.office365 import byte_comparable


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "verify", parents=[common],
        help="check the archive's integrity (--archive) or compare it with a target")
    add_account_options(parser, accounts_help="accounts to compare with their target")
    parser.add_argument("--archive", action="store_true",
                        help="re-hash every archived message and check the manifest")
    parser.add_argument("--full", action="store_true",
                        help="with ACCOUNT: compare every folder, also those unchanged since "
                             "the last verify found them complete")
    parser.add_argument("--bytes", action="store_true",
                        help="with ACCOUNT: also compare message bytes (not for office365)")
    parser.add_argument("--source", action="store_true",
                        help="with ACCOUNT: compare the archive with the source instead "
                             "(every message the source holds, read-only)")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    status = ExitStatus.OK
    if ctx.args.archive:
        status = max(status, verify_archive(ctx))
    if (ctx.args.accounts or ctx.args.all) and ctx.args.source:
        status = max(status, ExitStatus(verify_sources(ctx)))
    elif ctx.args.accounts or ctx.args.all:
        status = max(status, ExitStatus(verify_accounts(ctx)))
    return status


def verify_archive(ctx: Context) -> ExitStatus:
    if ctx.manifest_missing():  # looking must not create an archive
        return nothing_archived(ctx)
    with ctx.manifest().session() as session:
        report = check_archive(session, ctx.store(), ctx.emit)
    if ctx.args.json:
        ctx.out_json({"archive": report.counts(),
                      "problems": [p.describe() for p in report.problems]})
    elif not ctx.args.quiet or not report.ok:
        for problem in report.problems:
            ctx.out(problem.describe())
        counts = report.counts()
        ctx.out(f"archive: {counts['blobs']} blobs checked, {counts['missing']} missing, "
                f"{counts['corrupted']} corrupted, {counts['orphan_rows']} orphan rows"
                + (f", {counts['unreferenced_files']} unreferenced files (harmless)"
                   if counts["unreferenced_files"] else ""))
        if counts["missing"] or counts["corrupted"]:
            ctx.out("archive: `migrator repair ACCOUNT` fetches missing and corrupted "
                    "messages again from the source")
    return ExitStatus.OK if report.ok else ExitStatus.VERIFY


def nothing_archived(ctx: Context) -> ExitStatus:
    """No manifest yet: nothing can be damaged, so OK, said the way `status` says it (the log
    still shows the check started and what it counted)."""
    counts = ArchiveReport().counts()
    ctx.emit(TaskStarted("verify-archive", "", total=0, total_bytes=0))
    ctx.emit(TaskFinished("verify-archive", "", counts))
    if ctx.args.json:
        ctx.out_json({"archive": counts, "problems": [],
                      "nothing_archived": True})
    elif not ctx.args.quiet:
        ctx.out(f"archive: nothing archived yet at {ctx.settings().archive.path}")
    return ExitStatus.OK


def verify_accounts(ctx: Context) -> int:
    """Compare each named account's archive with its target; print a table per account."""
    for account in selected_accounts(ctx):
        target = account.target
        if ctx.args.bytes and target is not None and not byte_comparable(target):
            raise UsageError(f"{account.name}: --bytes is not possible against Office 365, "
                             "which re-renders every message it stores")
    results = run_each(ctx, "verify", verify_one)
    for result in results:
        if result.error:
            ctx.env.stderr.write(f"migrator: error: {result.error}\n")
        elif result.counts.get("no_target") and not (ctx.args.json or ctx.args.quiet):
            ctx.out(f"verify {result.account}: skipped (no target configured)")
    return worst_status(results)


def verify_one(ctx: Context, account: Account) -> JobResult:
    if account.target is None:
        return without_target(ctx, account, "verify")
    report = verify_target(account, ctx.manifest(), ctx.store(), ctx.emit,
                           byte_check=ctx.args.bytes, full=ctx.args.full)
    show_report(ctx, report)
    return report_result(report)


def report_result(report: TargetReport) -> JobResult:
    result = JobResult(report.account, "verify")
    result.counts.update(report.totals())
    if not report.ok:
        result.exit_status = ExitStatus.VERIFY
    elif report.refused:  # everything the target would take is there: PARTIAL, not VERIFY
        result.exit_status = ExitStatus.PARTIAL
    return result


def show_report(ctx: Context, report: TargetReport) -> None:
    if ctx.args.json:
        ctx.out_json(report.as_dict())
        return
    if ctx.args.quiet and report.ok:
        return
    width = max([len(f.target) for f in report.folders] + [13])
    ctx.out(f"verify {report.account}: target {report.target}")
    ctx.out(f"  {'target folder':<{width}}  {'archive':>7}  {'target':>7}  {'present':>7}  "
            f"{'missing':>7}  {'refused':>7}  {'dupes':>5}  {'extra':>5}"
            + (f"  {'changed':>7}" if report.byte_check else ""))
    for f in report.folders:
        ctx.out(f"  {f.target:<{width}}  {f.expected:>7}  {f.at_target:>7}  {f.present:>7}  "
                f"{len(f.missing):>7}  {len(f.refused):>7}  {f.duplicates:>5}  {f.extras:>5}"
                + (f"  {len(f.changed):>7}" if report.byte_check else ""))
    for f in report.folders:
        if f.merged:
            ctx.out(f"  merged in {f.target}: {f.merged} message(s) in more than one of "
                    f"{', '.join(f.sources)}, expected once")
        if f.folder_missing:
            ctx.out(f"  missing folder: {f.target} (from {', '.join(f.sources)})")
        for what, refs in (("missing", f.missing), ("refused by the target", f.refused),
                           ("bytes differ", f.changed)):
            for ref in refs:
                ctx.out(f"  {what} in {f.target}: {ref}")
    for mapping in report.skipped:
        ctx.out(f"  not compared: {mapping.describe()}")
    unchanged = [f.target for f in report.folders if f.skipped]
    if unchanged:
        ctx.out(f"  unchanged since the last verify (not compared again; --full compares "
                f"them): {', '.join(unchanged)}")
    totals = report.totals()
    ctx.out(f"verify {report.account}: {verdict(report)}: "
            f"{totals['present']} of {totals['expected']} present, {totals['missing']} missing, "
            + (f"{totals['missing_folders']} missing folder(s), " if totals["missing_folders"]
               else "") +
            f"{totals['refused']} refused, {totals['duplicates']} duplicates, "
            f"{totals['extras']} extra at the target")


def verdict(report: TargetReport) -> str:
    """ok, partial (only messages the target refused are absent) or DIFFERENCES."""
    if not report.ok:
        return "DIFFERENCES"
    return "partial (refused by the target)" if report.refused else "ok"

