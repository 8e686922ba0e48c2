"""`migrator verify ACCOUNT... --source`: run the comparison of each account's archive with
its source (engine/verify/source.py) and show it: a table per account, the messages named,
one verdict line; exit 7 for missing ones, 4 for known failures only."""

from __future__ import annotations

from migrator.cli.commands.accounts import run_each, worst_status
from migrator.cli.context import Context
from migrator.config import Account
from migrator.engine.results import JobResult
from migrator.engine.verify.source import SourceReport, verify_source
from migrator.errors import ExitStatus, UsageError


def verify_sources(ctx: Context) -> int:
    """Compare each named account's archive with its source; print a table per account."""
    if ctx.args.full or ctx.args.bytes:
        raise UsageError("--full and --bytes compare with the target; --source always lists "
                         "every message at the source")
    results = run_each(ctx, "verify", verify_source_one)
    for result in results:
        if result.error:
            ctx.env.stderr.write(f"migrator: error: {result.error}\n")
        elif result.counts.get("file_source") and not (ctx.args.json or ctx.args.quiet):
            ctx.out(f"verify {result.account} --source: skipped (a file source: "
                    "`verify --archive` checks what was imported)")
    return worst_status(results)


def verify_source_one(ctx: Context, account: Account) -> JobResult:
    if account.source.is_file:
        result = JobResult(account.name, "verify")
        result.counts["file_source"] = 1
        if ctx.args.json:
            ctx.out_json({"account": account.name, "skipped": "file source"})
        return result
    manifest = None if ctx.manifest_missing() else ctx.manifest()
    report = verify_source(account, manifest, ctx.emit)
    show_source_report(ctx, report)
    result = JobResult(report.account, "verify")
    result.counts.update(report.totals())
    if not report.ok:
        result.exit_status = ExitStatus.VERIFY
    elif report.incomplete:
        result.exit_status = ExitStatus.PARTIAL
    return result


SHOWN = 50  # messages named per folder and kind; the counts (and --json) have them all


def show_source_report(ctx: Context, report: SourceReport) -> None:
    if ctx.args.json:
        ctx.out_json(report.as_dict())
        return
    if ctx.args.quiet and report.ok and not report.incomplete:
        return
    width = max([len(f.folder) for f in report.folders] + [13])
    ctx.out(f"verify {report.account} --source: source {report.source}")
    ctx.out(f"  {'source folder':<{width}}  {'source':>7}  {'archived':>8}  {'missing':>7}  "
            f"{'failed':>6}  {'new':>5}  {'gone':>5}"
            + (f"  {'size':>5}" if report.sizes_compared else ""))
    for f in report.folders:
        ctx.out(f"  {f.folder:<{width}}  {f.at_source:>7}  {f.archived:>8}  "
                f"{len(f.missing):>7}  {len(f.failed):>6}  {f.new:>5}  {f.gone_from_source:>5}"
                + (f"  {len(f.size_differs):>5}" if report.sizes_compared else ""))
    for f in report.folders:
        if f.note:
            ctx.out(f"  {f.folder}: {f.note}")
        for what, refs in (("missing", f.missing), ("failed in an earlier pull", f.failed),
                           ("size differs", f.size_differs)):
            for ref in refs[:SHOWN]:
                ctx.out(f"  {what} in {f.folder}: {ref}")
            if len(refs) > SHOWN:
                ctx.out(f"  ... and {len(refs) - SHOWN} more {what} in {f.folder} (--json "
                        "names them all)")
    totals = report.totals()
    if not report.ok:
        verdict = "DIFFERENCES"
        advice = " (the next pull fetches what is missing)" if totals["missing"] else ""
    elif report.incomplete:
        verdict, advice = "partial (failed or unreadable at the source)", ""
    else:
        verdict, advice = "ok", ""
    ctx.out(f"verify {report.account} --source: {verdict}: {totals['archived']} of "
            f"{totals['at_source']} at the source archived, {totals['missing']} missing, "
            + (f"{totals['size_differs']} with another size, " if totals["size_differs"]
               else "")
            + f"{totals['failed']} failed, {totals['new']} new since the last pull, "
            f"{totals['gone_from_source']} archived but gone from the source" + advice)
