"""Push through the fault proxy: Exchange's throttling, token-expiry BYE, connections cut in the
middle of an APPEND literal. Whatever happens, every message arrives exactly once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from migrator.errors import ExitStatus
from migrator.targets import control
from tests.cli_runner import run_cli
from tests.integration.push_world import (
    assert_target_matches,
    fill_archive,
    grant_mailbox,
    message,
    placeholder_source,
    push_states,
    run_rows,
    target_block,
    target_count,
    write_world_config,
)
from tests.world.configs import Account, Config
from tests.world.proxy import FaultProxy

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]




def proxied(o365, certs, **kwargs) -> FaultProxy:
    return FaultProxy(o365.imaps_port, tls_terminate=True, certs=certs, **kwargs)


def config_via(proxy: FaultProxy, tmp_path, oauth, certs, extra=None):
    return write_world_config(tmp_path, placeholder_source(),
                              target_block(proxy.port, certs.ca_cert, oauth, extra=extra))


def test_connections_cut_in_the_middle_of_append_literals(o365, oauth_service, certs,
                                                          tmp_path, fault_proxy):
    messages = [message(n, size=3000 + 40 * n) for n in range(150)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.drop_in_literal("APPEND", nth=(5, 70, 71, 130))
    config = config_via(proxy, tmp_path, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert len(proxy.events_of("literal_drop")) == 4
    assert_target_matches(o365, messages)
    assert push_states(tmp_path / "archive") == {"done": len(messages)}


def test_a_connection_dropped_during_login_is_not_a_refused_login(o365, oauth_service, certs,
                                                                 tmp_path, fault_proxy):
    messages = [message(n) for n in range(5)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.drop_at("AUTHENTICATE", nth=(1,))
    config = config_via(proxy, tmp_path, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr  # logged in again: a lost connection
    assert "login refused" not in result.stderr
    assert proxy.events_of("command_drop") == [("AUTHENTICATE", 1)]
    assert_target_matches(o365, messages)


def test_a_literal_cut_before_its_end_is_sent_again_without_waiting(
        o365, oauth_service, certs, tmp_path, fault_proxy):
    """A message whose literal never reached the server whole cannot have been stored: it is
    sent again at once, with no wait for the target and nothing left to look for."""
    messages = [message(0), message(1, size=27_600_000), message(2)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.drop_in_literal("APPEND", nth=(2,), fraction=0.3)  # the big one, 8 MB in
    config = config_via(proxy, tmp_path, oauth_service, certs, extra={"connections": 1})

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert proxy.events_of("literal_drop") == [("APPEND", 2)]
    assert "for the target to store" not in result.stderr, result.stderr  # no settling wait
    assert "unknown outcome" not in result.stderr, result.stderr
    assert '"unknown_outcome"' not in run_rows(tmp_path / "archive", "push")[-1][1]
    assert_target_matches(o365, messages)
    assert push_states(tmp_path / "archive") == {"done": len(messages)}


@pytest.mark.parametrize("status", ["NO", "BAD"])
def test_throttled_appends_wait_and_go_again(o365, oauth_service, certs, tmp_path, fault_proxy,
                                             status):
    messages = [message(n) for n in range(60)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.throttle("APPEND", nth=(3, 4, 5, 20, 33), backoff_ms=50, status=status)
    config = config_via(proxy, tmp_path, oauth_service, certs)

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert len(proxy.events_of("throttle")) == 5
    assert_target_matches(o365, messages)


def test_repeated_throttling_lowers_parallelism(o365, oauth_service, certs, tmp_path,
                                                fault_proxy):
    messages = [message(n) for n in range(40)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.throttle("APPEND", nth=range(2, 12), backoff_ms=20)
    config = config_via(proxy, tmp_path, oauth_service, certs, extra={"connections": 4})

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert "keeps throttling: down to" in result.stderr
    assert_target_matches(o365, messages)


def test_token_expiry_bye_reconnects_with_a_fresh_token(o365, oauth_service, certs, tmp_path,
                                                        fault_proxy):
    messages = [message(n, size=4000) for n in range(250)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs, delay=0.002,
                        bandwidth=400_000)  # about 3 s of pushing: sessions end under way
    proxy.bye(after_seconds=0.8)
    config = config_via(proxy, tmp_path, oauth_service, certs, extra={"connections": 2})

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert proxy.events_of("bye"), "the run was expected to outlive a session"
    assert oauth_service.issued["client_credentials"] > 1  # a fresh token after each BYE
    assert_target_matches(o365, messages)


def test_throttled_select_and_fetch_on_the_control_connection_are_retried(
        o365, oauth_service, certs, tmp_path, fault_proxy):
    messages = [message(n) for n in range(10)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.throttle("SELECT", nth=(1,), backoff_ms=10)
    proxy.throttle("FETCH", nth=(1,), backoff_ms=10)
    config = config_via(proxy, tmp_path, oauth_service, certs)

    pushed = run_cli("-c", config, "push", "bob")
    verified = run_cli("-c", config, "verify", "bob")

    assert pushed.status == ExitStatus.OK, pushed.stderr
    assert verified.status == ExitStatus.OK, verified.stdout + verified.stderr
    assert {name for name, _ in proxy.events_of("throttle")} == {"SELECT", "UID FETCH"}
    assert_target_matches(o365, messages)


def test_authenticated_but_not_connected_means_fewer_connections(
        o365, oauth_service, certs, tmp_path, fault_proxy, monkeypatch):
    # Exchange's words when a mailbox has too many connections (or no permission yet)
    monkeypatch.setattr("tests.world.proxy.THROTTLED",
                        b"User is authenticated but not connected. (%d)")
    messages = [message(n) for n in range(40)]
    fill_archive(tmp_path / "archive", messages)
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.throttle("APPEND", nth=(3, 4), status="BAD")
    config = config_via(proxy, tmp_path, oauth_service, certs, extra={"connections": 3})

    result = run_cli("-c", config, "push", "bob")

    assert result.status == ExitStatus.OK, result.stderr
    assert "target refused a connection" in result.stderr and "down to" in result.stderr
    assert_target_matches(o365, messages)


def test_a_target_that_keeps_dropping_fails_its_account_and_the_others_go_on(
        o365, oauth_service, certs, tmp_path, fault_proxy, monkeypatch):
    """`push --all`: the first account's control connection is cut at every LIST until the
    retries are spent; that account fails with one line (exit 6), the next one is pushed.
    Every retry happens, only the waits between them are short (they added ~13 s)."""
    monkeypatch.setattr(control, "RECONNECTS", replace(control.RECONNECTS, base_delay=0.01))
    grant_mailbox(oauth_service, o365, "carol@contoso.test")
    bobs, carols = [message(n) for n in range(5)], [message(n) for n in range(100, 108)]
    fill_archive(tmp_path / "archive", bobs)
    fill_archive(tmp_path / "archive", carols, account="carol")
    proxy = fault_proxy(o365.imaps_port, tls_terminate=True, certs=certs)
    proxy.drop_at("LIST", rate=1.0)
    accounts = {
        "bob": Account(placeholder_source(),
                       target_block(proxy.port, certs.ca_cert, oauth_service)),
        "carol": Account(placeholder_source(),
                         target_block(o365.imaps_port, certs.ca_cert, oauth_service,
                                      mailbox="carol@contoso.test"))}
    config = Config(tmp_path / "archive", accounts).write(tmp_path / "migrator.toml")

    result = run_cli("-c", config, "push", "--all")

    assert result.status == ExitStatus.CONNECTION, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("migrator: error")]
    assert len(errors) == 1 and errors[0].startswith("migrator: error: bob: connection lost for "
                                                     "good: "), result.stderr
    assert "LIST" in errors[0]
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    drops = len(proxy.events_of("command_drop"))
    assert drops >= control.RECONNECTS.attempts, drops  # every retry spent before giving up
    assert "push carol: ok: pushed 8" in result.stdout, result.stdout
    assert_target_matches(o365, carols, user="carol@contoso.test")
    assert target_count(o365) == 0  # nothing of bob's was pushed
