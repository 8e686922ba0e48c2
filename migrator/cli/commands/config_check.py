"""`migrator config check FILE`: validate a config without touching any server."""

from __future__ import annotations

import argparse
from typing import Any

from migrator import config
from migrator.cli.context import Context
from migrator.errors import ExitStatus


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("config", help="inspect configuration", parents=[common])
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", parents=[common],
                               help="validate a config file and show what it describes")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=run_check)


def describe_endpoint(endpoint: config.Endpoint) -> dict[str, Any]:
    """What a config means, fit to print: secrets appear as their references only."""
    described: dict[str, Any] = {
        "kind": endpoint.kind, "host": endpoint.host, "port": endpoint.port,
        "security": endpoint.security, "username": endpoint.username, "auth": endpoint.auth,
        "tls_verify": endpoint.tls_verify, "connections": endpoint.connections,
    }
    if endpoint.password is not None:
        described["password"] = endpoint.password.describe()
    if endpoint.oauth is not None:
        described["oauth"] = {
            "flow": endpoint.oauth.flow, "client_id": endpoint.oauth.client_id,
            "authority": endpoint.oauth.authority_url,
            "client_secret": (endpoint.oauth.client_secret.describe()
                              if endpoint.oauth.client_secret else None),
        }
    if endpoint.kind == "pop3":
        described["delete"] = endpoint.delete.mode
        if endpoint.delete.mode != "never":
            described["delete_after_days"] = endpoint.delete.after_days
    return described


def run_check(ctx: Context) -> int:
    settings = config.load(ctx.args.file)
    warnings = [f"{where}: literal secret in config; prefer env:, file: or keyring:"
                for where in config.literal_secrets(settings)]
    if ctx.args.json:
        ctx.out_json({
            "file": str(settings.file), "archive": str(settings.archive.path),
            "accounts": {name: {"source": describe_endpoint(account.source),
                                "target": describe_endpoint(account.target)
                                if account.target else None}
                         for name, account in settings.accounts.items()},
            "warnings": warnings,
        })
    elif not ctx.args.quiet:
        ctx.out(f"{settings.file}: OK")
        ctx.out(f"  archive: {settings.archive.path} ({settings.archive.compression})")
        for name, account in settings.accounts.items():
            ctx.out(f"  account {name}: {_line(account.source)}"
                    + (f" -> {_line(account.target)}" if account.target else ""))
    for warning in [] if ctx.args.json else warnings:  # --json: stderr is for errors only
        ctx.env.stderr.write(f"migrator: warning: {warning}\n")
    return ExitStatus.OK


def _line(endpoint: config.Endpoint) -> str:
    return (f"{endpoint.kind} {endpoint.username}@{endpoint.host}:{endpoint.port} "
            f"({endpoint.security}, {endpoint.auth})")
