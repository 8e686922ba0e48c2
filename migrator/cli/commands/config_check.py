"""`migrator config check [FILE]`: validate a config without touching any server.

Validating includes resolving every secret reference (a run would stop on an unset `env:`
variable or a missing `file:`), yet no secret value is ever printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from migrator import config
from migrator.cli.context import Context
from migrator.errors import ConfigError, ExitStatus, SecretError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("config", help="inspect configuration", parents=[common])
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", parents=[common],
                               help="validate a config file and show what it describes")
    check.add_argument("file", metavar="FILE", nargs="?",
                       help="the config to check (default: -c FILE, $MIGRATOR_CONFIG, ...)")
    check.set_defaults(func=run_check)


def describe_endpoint(endpoint: config.Endpoint) -> dict[str, Any]:
    """What a config means, fit to print: secrets appear as their references only."""
    if endpoint.is_file:
        return {"kind": endpoint.kind, "path": str(endpoint.path)}
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


def config_file(ctx: Context) -> Path:
    """FILE, else `-c FILE` like every other command (else the default places)."""
    explicit = getattr(ctx.args, "config", None)
    if ctx.args.file and explicit and Path(ctx.args.file).resolve() != Path(explicit).resolve():
        raise ConfigError(f"config check: FILE {ctx.args.file} and -c {explicit} are "
                          "different files; give one")
    return Path(ctx.args.file) if ctx.args.file else ctx.config_path


def check_secrets(settings: config.Settings) -> tuple[list[str], list[str]]:
    """(errors, notes): every secret reference resolved, its value dropped at once."""
    errors, notes = [], []
    for secret in config.secrets_in(settings):
        try:
            note = secret.check()
        except SecretError as exc:
            errors.append(str(exc))
            continue
        if note:
            notes.append(note)
    return errors, notes


def check_paths(settings: config.Settings) -> list[str]:
    """A file source whose path is not there (yet: a disk not mounted?) would fail a run:
    a warning, as a server that cannot be reached now is none of config check's business."""
    return [f"{settings.file}: accounts.{name}.source.path: {account.source.path} does not "
            f"exist (the {account.source.kind} to import)"
            for name, account in settings.accounts.items()
            if account.source.path is not None and not account.source.path.exists()]


def run_check(ctx: Context) -> int:
    settings = config.load(config_file(ctx))
    warnings = [f"{where}: literal secret in config; prefer env:, file: or keyring:"
                for where in config.literal_secrets(settings)]
    warnings += check_paths(settings)
    errors, notes = check_secrets(settings)
    warnings += notes
    if ctx.args.json:
        ctx.out_json({
            "file": str(settings.file), "archive": str(settings.archive.path),
            "accounts": {name: {"source": describe_endpoint(account.source),
                                "target": describe_endpoint(account.target)
                                if account.target else None}
                         for name, account in settings.accounts.items()},
            "warnings": warnings, "errors": errors,
        })
    elif not ctx.args.quiet and not errors:
        ctx.out(f"{settings.file}: OK")
        ctx.out(f"  archive: {settings.archive.path} ({settings.archive.compression})")
        for name, account in settings.accounts.items():
            ctx.out(f"  account {name}: {_line(account.source)}"
                    + (f" -> {_line(account.target)}" if account.target else ""))
    for warning in [] if ctx.args.json else warnings:  # --json: stderr is for errors only
        ctx.env.stderr.write(f"migrator: warning: {warning}\n")
    for error in errors:  # every one, not just the first: fix them all in one go
        ctx.env.stderr.write(f"migrator: error: {error}\n")
    return ExitStatus.CONFIG if errors else ExitStatus.OK


def _line(endpoint: config.Endpoint) -> str:
    if endpoint.is_file:
        return f"{endpoint.kind} {endpoint.path}"
    return (f"{endpoint.kind} {endpoint.username}@{endpoint.host}:{endpoint.port} "
            f"({endpoint.security}, {endpoint.auth})")
