"""`migrator auth login/test` with the real MSAL library against the test identity service."""

from __future__ import annotations

import stat
import threading
import time

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import Result, run_cli
from tests.integration.push_world import (
    MAILBOX,
    SECRET,
    SECRET_ENV,
    assert_target_matches,
    fill_archive,
    grant_mailbox,
    issued_tokens,
    leaked,
    message,
    placeholder_source,
    target_block,
    write_world_config,
)

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]
PUBLIC_APP = "public-app"



def device_config(tmp_path, server, oauth, certs):
    oauth.add_client(PUBLIC_APP)
    server.add_user(MAILBOX)
    return write_world_config(tmp_path, placeholder_source(), target_block(
        server.imaps_port, certs.ca_cert, oauth, flow="device_code", client_id=PUBLIC_APP))


def sign_in(config, oauth, *extra: str) -> Result:
    """Run `auth login` and play the user who enters the code in a browser."""
    box: dict[str, Result] = {}
    thread = threading.Thread(target=lambda: box.setdefault(
        "result", run_cli("-c", config, *extra, "auth", "login", "bob")))
    thread.start()
    deadline = time.monotonic() + 30
    while not oauth.pending_user_codes():
        assert time.monotonic() < deadline and thread.is_alive(), "no device code requested"
        time.sleep(0.02)
    code = oauth.pending_user_codes()[0]
    oauth.approve(code, MAILBOX)
    thread.join(60)
    assert not thread.is_alive()
    result = box["result"]
    assert code in result.stdout and f"{oauth.base_url}/devicelogin" in result.stdout
    return result


def test_device_code_sign_in_once_then_silent(office365_server, oauth_service, certs,
                                              tmp_path):
    config = device_config(tmp_path, office365_server, oauth_service, certs)
    cache = tmp_path / "archive" / "tokens" / "bob.json"

    login = sign_in(config, oauth_service, "-vv")

    assert login.status == ExitStatus.OK, login.stderr
    assert "signed in" in login.stdout and cache.exists()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert oauth_service.issued == {"device_code": 1}
    written = cache.stat().st_mtime_ns

    tested = run_cli("-c", config, "auth", "test", "bob")
    assert tested.status == ExitStatus.OK, tested.stderr
    assert "XOAUTH2 login to 127.0.0.1" in tested.stdout
    assert oauth_service.issued == {"device_code": 1}  # no prompt, no new token
    assert cache.stat().st_mtime_ns == written  # unchanged cache: not rewritten

    messages = [message(n) for n in range(5)]
    fill_archive(tmp_path / "archive", messages)
    pushed = run_cli("-c", config, "push", "bob")
    assert pushed.status == ExitStatus.OK, pushed.stderr
    assert_target_matches(office365_server, messages)
    secrets = [*issued_tokens(oauth_service), *oauth_service._refresh]
    assert leaked(secrets, login.stdout, login.stderr, tested.stdout, pushed.stderr) == []


def test_token_near_expiry_is_refreshed_silently(office365_server, oauth_service, certs,
                                                 tmp_path):
    oauth_service.token_lifetime = 120  # MSAL refreshes what expires within five minutes
    config = device_config(tmp_path, office365_server, oauth_service, certs)
    cache = tmp_path / "archive" / "tokens" / "bob.json"
    assert sign_in(config, oauth_service).status == ExitStatus.OK
    before = cache.read_text()

    tested = run_cli("-c", config, "auth", "test", "bob")

    assert tested.status == ExitStatus.OK, tested.stderr
    assert oauth_service.issued["refresh_token"] >= 1 and oauth_service.issued["device_code"] == 1
    assert cache.read_text() != before and stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_without_a_sign_in_the_run_says_what_to_do(office365_server, oauth_service, certs,
                                                   tmp_path):
    config = device_config(tmp_path, office365_server, oauth_service, certs)
    result = run_cli("-c", config, "auth", "test", "bob")
    assert result.status == ExitStatus.AUTH
    assert "run `migrator auth login bob` once" in result.stderr
    assert result.stderr.count("\n") == 1


def test_client_credentials_token_opens_the_mailbox(office365_server, oauth_service, certs,
                                                    tmp_path):
    grant_mailbox(oauth_service, office365_server)
    config = write_world_config(tmp_path, placeholder_source(), target_block(
        office365_server.imaps_port, certs.ca_cert, oauth_service))

    login = run_cli("-c", config, "auth", "login", "bob")
    tested = run_cli("-c", config, "-vv", "auth", "test", "bob")

    assert login.status == ExitStatus.OK and "no sign-in needed" in login.stdout
    assert tested.status == ExitStatus.OK, tested.stderr
    assert f"XOAUTH2 login to 127.0.0.1:{office365_server.imaps_port} as {MAILBOX}" \
        in tested.stdout
    assert oauth_service.issued["client_credentials"] >= 1
    secrets = [SECRET, *issued_tokens(oauth_service)]
    assert leaked(secrets, login.stdout, login.stderr, tested.stdout, tested.stderr) == []


def test_wrong_client_secret_is_an_auth_error_without_the_secret(
        office365_server, oauth_service, certs, tmp_path, monkeypatch):
    grant_mailbox(oauth_service, office365_server)
    monkeypatch.setenv(SECRET_ENV, "wrong-Secret-value-123")
    config = write_world_config(tmp_path, placeholder_source(), target_block(
        office365_server.imaps_port, certs.ca_cert, oauth_service))

    result = run_cli("-c", config, "-v", "auth", "test", "bob")

    assert result.status == ExitStatus.AUTH
    assert "invalid_client" in result.stderr
    assert "wrong-Secret-value-123" not in result.stderr + result.stdout


def test_mailbox_without_permission_is_refused(office365_server, oauth_service, certs,
                                               tmp_path):
    oauth_service.add_client("app", SECRET)  # no grant for the mailbox
    office365_server.add_user(MAILBOX)
    config = write_world_config(tmp_path, placeholder_source(), target_block(
        office365_server.imaps_port, certs.ca_cert, oauth_service))
    result = run_cli("-c", config, "auth", "test", "bob")
    assert result.status == ExitStatus.AUTH
    assert f"login refused for {MAILBOX}" in result.stderr


def test_connections_told_the_token_expired_share_one_refresh(oauth_service, certs,
                                                               monkeypatch) -> None:
    """When every connection hears "token expired" at once, one new token serves them all;
    a later expiry gets a fresh refresh again."""
    from pathlib import Path

    from migrator import auth
    from migrator.config import OAuthSettings
    from migrator.secrets import Secret

    oauth_service.add_client("app", SECRET)
    settings = OAuthSettings(flow="client_credentials", client_id="app",
                             client_secret=Secret(f"env:{SECRET_ENV}", "test"),
                             authority=oauth_service.authority, ca_file=Path(certs.ca_cert))
    provider = auth.TokenProvider(settings, "bob")
    first = provider.token()
    issued = oauth_service.tokens_issued
    oauth_service.expire_all()
    refreshed = [provider.token(force_refresh=True) for _ in range(4)]  # four connections
    assert oauth_service.tokens_issued == issued + 1
    assert len(set(refreshed)) == 1 and refreshed[0] != first

    monkeypatch.setattr(auth, "SHARED_REFRESH_SECONDS", 0.0)  # the next expiry, much later
    assert provider.token(force_refresh=True) != refreshed[0]
    assert oauth_service.tokens_issued == issued + 2


@pytest.mark.parametrize("flow", ["client_credentials", "device_code"])
def test_a_cached_token_the_server_refuses_is_replaced_once(office365_server, oauth_service,
                                                            certs, tmp_path, flow):
    """MSAL trusts a cached access token until five minutes before the expiry it was told;
    the server may refuse it sooner (revoked, its clock ahead, an identity service that
    forgot it). The login is tried once more with a token fresh from the identity service."""
    if flow == "device_code":
        config = device_config(tmp_path, office365_server, oauth_service, certs)
        assert sign_in(config, oauth_service).status == ExitStatus.OK
    else:
        grant_mailbox(oauth_service, office365_server)
        config = write_world_config(tmp_path, placeholder_source(), target_block(
            office365_server.imaps_port, certs.ca_cert, oauth_service))
    fill_archive(tmp_path / "archive", [message(n) for n in range(3)])
    first = run_cli("-c", config, "push", "bob")  # app tokens: cached in the process
    assert first.status == ExitStatus.OK, first.stderr
    issued = oauth_service.tokens_issued
    oauth_service.expire_all()  # refused from now on; MSAL's cache still holds them as valid

    again = run_cli("-c", config, "push", "bob")  # nothing to push, but it logs in

    assert again.status == ExitStatus.OK, again.stderr
    assert oauth_service.tokens_issued == issued + 1
    assert_target_matches(office365_server, [message(n) for n in range(3)])
