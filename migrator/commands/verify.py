"""`migrator verify --archive`: re-hash every blob and check the manifest points at real data."""

from __future__ import annotations

import argparse
from typing import Any

from migrator.context import Context
from migrator.engine.archive_check import check_archive
from migrator.errors import ExitStatus, MigratorError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "verify", parents=[common],
        help="check the archive's integrity (--archive) or compare it with a target")
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT",
                        help="accounts to compare with their target")
    parser.add_argument("--archive", action="store_true",
                        help="re-hash every archived message and check the manifest")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    if not ctx.args.archive and not ctx.args.accounts:
        raise MigratorError("verify needs --archive or at least one ACCOUNT")
    status = ExitStatus.OK
    if ctx.args.archive:
        status = max(status, verify_archive(ctx))
    return status


def verify_archive(ctx: Context) -> ExitStatus:
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
    return ExitStatus.OK if report.ok else ExitStatus.VERIFY
