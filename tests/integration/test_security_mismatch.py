"""`security` that does not match the port: said at once, in one line naming the setting.

A plain (or STARTTLS) client on a TLS port hears no greeting, since the server waits for a
TLS handshake: only a short greeting timeout tells (min(timeout, 10 s): the tests set
`timeout = 2` so each waits 2 s, not 10). A TLS client on a plain port reads the greeting as a
broken TLS record (WRONG_VERSION_NUMBER).
"""

from __future__ import annotations

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.imap_pull_world import PASSWORD_ENV, source_config
from tests.integration.pop3_world import pop3_config

pytestmark = pytest.mark.world


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("migrator: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def config_for(kind: str, tmp_path, server, security: str, port: int):
    short = {"timeout": 2}  # the greeting wait is bounded by it: the test need not wait 10 s
    if kind == "pop3":
        return pop3_config(tmp_path, server, security=security, port=port, extra=short)
    return source_config(tmp_path, server, security=security, port=port, extra=short)


@pytest.mark.parametrize("kind", ["imap", "pop3"])
@pytest.mark.parametrize("security", ["plain", "starttls"])
def test_a_clear_text_client_on_a_tls_port_is_told_to_check_security(
        source_server, tmp_path, monkeypatch, kind, security):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    port = source_server.pop3s_port if kind == "pop3" else source_server.imaps_port

    result = run_cli("-c", config_for(kind, tmp_path, source_server, security, port), "pull",
                     "--all")

    assert result.status == ExitStatus.CONNECTION, result.stderr
    line = one_error_line(result.stderr)
    assert f'security = "{security}"' in line and f"port {port}" in line and "TLS" in line
    assert "no greeting within 2s" in line


@pytest.mark.parametrize("kind", ["imap", "pop3"])
def test_a_tls_client_on_a_clear_text_port_is_told_to_check_security(
        source_server, tmp_path, monkeypatch, kind):
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    port = source_server.pop3_port if kind == "pop3" else source_server.imap_port

    result = run_cli("-c", config_for(kind, tmp_path, source_server, "tls", port), "pull",
                     "--all")

    assert result.status == ExitStatus.CONNECTION, result.stderr
    line = one_error_line(result.stderr)
    assert 'security = "tls"' in line and f"port {port}" in line and "plain text" in line
