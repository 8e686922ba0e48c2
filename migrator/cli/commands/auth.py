"""`migrator auth login ACCOUNT` (device code sign-in, once) and `auth test ACCOUNT`.

`login` shows the URL and code to enter, waits for the sign-in, and saves the token cache
(mode 0600); later runs refresh silently from that cache and never prompt. `test` gets a
token without prompting and logs in to the server with it, proving the whole chain works.
"""

from __future__ import annotations

import argparse
from typing import Any

from migrator.auth import TokenProvider
from migrator.cli.context import Context
from migrator.config import Account, Endpoint
from migrator.errors import ConfigError, ExitStatus
from migrator.wire import imapconn


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("auth", parents=[common],
                                   help="sign in (OAuth2) once, or test a login")
    commands = parser.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    for name, func, text in (
            ("login", login, "sign in with a device code and save the token cache"),
            ("test", test, "get a token without prompting and log in to the server")):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("account", metavar="ACCOUNT")
        side = sub.add_mutually_exclusive_group()
        side.add_argument("--source", action="store_true", help="the account's source")
        side.add_argument("--target", action="store_true", help="the account's target")
        sub.set_defaults(func=func)


def endpoint_of(ctx: Context) -> tuple[Account, Endpoint, str]:
    """The endpoint to sign in to: as asked, else the target if it uses OAuth2, else the source."""
    account = ctx.settings().account(ctx.args.account)
    if ctx.args.source:
        return account, account.source, "source"
    if ctx.args.target or (account.target is not None and account.target.auth == "xoauth2"):
        if account.target is None:
            raise ConfigError(f"{account.name}: has no target")
        return account, account.target, "target"
    return account, account.source, "source"


def provider(account: Account, endpoint: Endpoint, side: str) -> TokenProvider:
    if endpoint.auth != "xoauth2" or endpoint.oauth is None:
        raise ConfigError(f"{account.name}: the {side} uses password login; nothing to sign in "
                          "to (use `auth test` to check the login)")
    return TokenProvider(endpoint.oauth, account.name, endpoint.protocol)


def say(ctx: Context, text: str, **fields: Any) -> None:
    """One line for a person, or with --json the same as an object (text included)."""
    if ctx.args.json:
        ctx.out_json({**fields, "text": text})
    else:
        ctx.out(text)
    ctx.env.stdout.flush()  # the device code must be seen while login waits for it


def login(ctx: Context) -> int:
    account, endpoint, side = endpoint_of(ctx)
    tokens = provider(account, endpoint, side)
    assert endpoint.oauth is not None
    where = {"account": account.name, "side": side}
    if endpoint.oauth.flow == "client_credentials":
        tokens.token()
        say(ctx, f"{account.name}: {side} uses app-only client credentials: no sign-in needed; "
                 f"a token was issued by {endpoint.oauth.authority_url}",
            **where, outcome="ok", signed_in=False)
        return ExitStatus.OK
    tokens.login_device_code(lambda message: say(ctx, message, event="sign_in", **where))
    say(ctx, f"{account.name}: signed in; token cache saved to {endpoint.oauth.token_cache} "
             "(later runs refresh it silently)",
        **where, outcome="ok", signed_in=True, token_cache=str(endpoint.oauth.token_cache))
    return ExitStatus.OK


def test(ctx: Context) -> int:
    account, endpoint, side = endpoint_of(ctx)
    tokens = None
    if endpoint.auth == "xoauth2":
        tokens = provider(account, endpoint, side)
        tokens.token()  # a refused or missing sign-in fails here, with its own message
    where = {"account": account.name, "side": side, "outcome": "ok"}
    if endpoint.protocol != "imap":
        say(ctx, f"{account.name}: {side}: token obtained (POP3 login is tested by `pull`)",
            **where, login="not tested")
        return ExitStatus.OK
    client = imapconn.connect(endpoint, account.name, tokens)
    imapconn.close_quietly(client)
    how = "XOAUTH2" if tokens is not None else "password"
    say(ctx, f"{account.name}: {side}: {how} login to {endpoint.host}:{endpoint.port} as "
             f"{endpoint.username} works", **where, login=how)
    return ExitStatus.OK
