"""Config parsing: samples load, errors name file and key, secrets stay references."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from migrator import config
from migrator.errors import ConfigError, ExitStatus, SecretError
from tests.cli_runner import run_cli, write_config

SAMPLES = sorted((Path(__file__).parents[2] / "sample_configs").glob("*.toml"))

MINIMAL = """
[archive]
path = "archive"

[accounts.alice.source]
kind = "imap"
host = "127.0.0.1"
username = "alice"
password = "env:MIGRATOR_TEST_PW"
"""


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_config_loads(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = config.load(sample)
    assert settings.accounts or settings.batch.source
    text = sample.read_text()
    for name in re.findall(r'"env:(\w+)"', text):
        monkeypatch.setenv(name, "sample-value")
    result = run_cli("config", "check", sample)
    # the samples' file: secrets live under /etc/migrator, which config check must resolve
    unreadable = [line for line in result.stderr.splitlines() if "cannot read secret file" in line]
    assert len(unreadable) == len(re.findall(r'"file:', text))
    assert result.status == (3 if unreadable else 0), result.stderr


def test_at_least_the_four_documented_samples_exist() -> None:
    names = {p.name for p in SAMPLES}
    assert {"backup-imap.toml", "backup-pop3.toml", "migrate-office365.toml",
            "migrate-pop3-office365.toml"} <= names


def test_defaults_by_kind(tmp_path: Path) -> None:
    settings = config.load(write_config(tmp_path, MINIMAL))
    source = settings.account("alice").source
    assert (source.port, source.security, source.tls_verify) == (993, "tls", True)
    assert settings.archive.path == tmp_path / "archive"
    assert settings.archive.database == f"sqlite:///{tmp_path / 'archive' / 'manifest.sqlite'}"
    assert source.delete.mode == "never"


@pytest.mark.parametrize(("change", "key", "problem"), [
    (('host = "127.0.0.1"', ""), "accounts.alice.source.host", "is required"),
    (('kind = "imap"', 'kind = "smtp"'), "accounts.alice.source.kind", "must be one of"),
    (('username = "alice"', 'username = "alice"\nport = "993"'),
     "accounts.alice.source.port", "must be an integer"),
    (('username = "alice"', 'username = "alice"\ndelet = "x"'),
     "accounts.alice.source.delet", "unknown key"),
    (('password = "env:MIGRATOR_TEST_PW"', ""), "accounts.alice.source.password", "required"),
    (('path = "archive"', 'path = 3'), "archive.path", "must be a string"),
    (('username = "alice"', 'username = "alice"\ntls_verify = "no"'),
     "accounts.alice.source.tls_verify", "true or false"),
])
def test_config_error_names_file_and_key(tmp_path: Path, change: tuple[str, str], key: str,
                                         problem: str) -> None:
    path = write_config(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert str(path) in message and key in message and problem in message
    result = run_cli("config", "check", path)
    assert result.status == 3
    assert result.stderr.count("\n") == 1 and key in result.stderr
    assert "Traceback" not in result.stderr


def test_pop3_delete_policy_needs_a_known_value(tmp_path: Path) -> None:
    body = MINIMAL.replace('kind = "imap"', 'kind = "pop3"\ndelete = "always"')
    with pytest.raises(ConfigError, match="delete: must be one of never, after-archive"):
        config.load(write_config(tmp_path, body))


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    result = run_cli("config", "check", write_config(tmp_path, "[archive\n"))
    assert result.status == 3 and "not valid TOML" in result.stderr


def test_env_secret_resolves_late_and_is_never_printed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATOR_TEST_PW", "s3cr3t-Value-42")
    path = write_config(tmp_path, MINIMAL)
    settings = config.load(path)
    password = settings.account("alice").source.password
    assert password is not None and password.resolve() == "s3cr3t-Value-42"
    assert "s3cr3t" not in repr(settings)
    for args in (("config", "check", path), ("--json", "config", "check", path),
                 ("-c", path, "status"), ("-c", path, "--json", "status")):
        result = run_cli(*args)
        assert result.status == 0, result.stderr
        assert "s3cr3t-Value-42" not in result.stdout + result.stderr
    assert "env:MIGRATOR_TEST_PW" in run_cli("config", "check", path, "--json").stdout


def test_missing_env_secret_names_the_key_not_a_value(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATOR_TEST_PW", raising=False)
    password = config.load(write_config(tmp_path, MINIMAL)).account("alice").source.password
    assert password is not None
    with pytest.raises(SecretError, match=r"accounts.alice.source.password: environment "
                                          r"variable MIGRATOR_TEST_PW is not set"):
        password.resolve()


def test_file_secret_strips_trailing_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("pa ss\n")
    body = MINIMAL.replace("env:MIGRATOR_TEST_PW", f"file:{secret_file}")
    password = config.load(write_config(tmp_path, body)).account("alice").source.password
    assert password is not None and password.resolve() == "pa ss"


def test_literal_secret_warns_without_showing_it(tmp_path: Path) -> None:
    body = MINIMAL.replace("env:MIGRATOR_TEST_PW", "hunter2-literal")
    result = run_cli("config", "check", write_config(tmp_path, body))
    assert result.status == 0
    assert "literal secret" in result.stderr and "accounts.alice.source.password" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_unknown_account_lists_known_ones(tmp_path: Path) -> None:
    settings = config.load(write_config(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"no account named 'bob' \(known: alice"):
        settings.account("bob")


def test_xoauth2_needs_oauth_table(tmp_path: Path) -> None:
    body = MINIMAL + '\n[accounts.alice.target]\nkind = "office365"\nusername = "a@b.c"\n'
    with pytest.raises(ConfigError, match=r"accounts\.alice\.target\.oauth: is required"):
        config.load(write_config(tmp_path, body))


def test_after_push_deletion_needs_a_target(tmp_path: Path) -> None:
    body = MINIMAL.replace('kind = "imap"', 'kind = "pop3"\ndelete = "after-push"')
    with pytest.raises(ConfigError, match=r"accounts\.alice\.source\.delete: \"after-push\" "
                                          r"needs a \[accounts\.alice\.target\]"):
        config.load(write_config(tmp_path, body))


def test_config_check_resolves_every_secret_reference(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATOR_TEST_PW", raising=False)
    monkeypatch.delenv("MIGRATOR_TEST_APP", raising=False)
    body = MINIMAL + f"""
[accounts.alice.target]
kind = "office365"
username = "alice@contoso.test"
[accounts.alice.target.oauth]
flow = "client_credentials"
client_id = "app"
client_secret = "file:{tmp_path / 'app-secret'}"
"""
    path = write_config(tmp_path, body)
    result = run_cli("config", "check", path)
    assert result.status == ExitStatus.CONFIG
    assert "accounts.alice.source.password: environment variable MIGRATOR_TEST_PW is not set" \
        in result.stderr
    assert "accounts.alice.target.oauth.client_secret: cannot read secret file" in result.stderr
    assert "Traceback" not in result.stderr and ": OK" not in result.stdout

    monkeypatch.setenv("MIGRATOR_TEST_PW", "pw-Value-8812")
    (tmp_path / "app-secret").write_text("app-Value-5521\n")
    for args in (("config", "check", path), ("--json", "config", "check", path)):
        result = run_cli(*args)
        assert result.status == ExitStatus.OK, result.stderr
        assert "Value-" not in result.stdout + result.stderr


def test_config_check_tells_when_a_keyring_reference_cannot_be_checked(tmp_path: Path) -> None:
    if importlib.util.find_spec("keyring") is not None:
        pytest.skip("the keyring extra is installed here: the reference is resolved instead")
    body = MINIMAL.replace("env:MIGRATOR_TEST_PW", "keyring:migrator/alice")
    result = run_cli("config", "check", write_config(tmp_path, body))
    assert result.status == ExitStatus.OK, result.stderr
    assert "keyring:migrator/alice not checked: the keyring extra is not installed" \
        in result.stderr


def test_config_check_accepts_dash_c_like_every_command(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATOR_TEST_PW", "x")
    path = write_config(tmp_path, MINIMAL)
    for args in (("-c", path, "config", "check"), ("config", "check", "-c", path),
                 ("-c", path, "config", "check", path)):
        result = run_cli(*args)
        assert result.status == ExitStatus.OK, result.stderr
        assert f"{path}: OK" in result.stdout
    other = write_config(tmp_path, MINIMAL, name="other.toml")
    result = run_cli("-c", path, "config", "check", other)
    assert result.status == ExitStatus.CONFIG and "different files" in result.stderr


def test_a_mistyped_required_key_suggests_the_known_one(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL.replace("username =", "usrname ="))
    result = run_cli("config", "check", path)
    assert result.status == ExitStatus.CONFIG
    assert "accounts.alice.source.username: is required (found 'usrname': did you mean " \
        "'username'?)" in result.stderr


def test_an_unknown_key_suggests_the_closest_known_one(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "tls_verfy = false\n")
    with pytest.raises(ConfigError, match=r"tls_verfy: unknown key \(did you mean "
                                          r"'tls_verify'\?\)"):
        config.load(path)


@pytest.mark.parametrize("port", [0, 65536])
def test_a_port_out_of_range_is_refused(tmp_path: Path, port: int) -> None:
    path = write_config(tmp_path, MINIMAL + f"port = {port}\n")
    with pytest.raises(ConfigError, match=r"accounts\.alice\.source\.port: must be at"):
        config.load(path)


def test_config_check_resolves_the_batch_tables_secrets(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATOR_TEST_APP", raising=False)
    path = write_config(tmp_path, """
[archive]
path = "archive"
[batch.source]
kind = "imap"
host = "127.0.0.1"
[batch.target]
kind = "office365"
[batch.target.oauth]
flow = "client_credentials"
client_id = "app"
client_secret = "env:MIGRATOR_TEST_APP"
""")
    result = run_cli("-c", path, "config", "check")
    assert result.status == ExitStatus.CONFIG
    assert "batch.target.oauth.client_secret: environment variable MIGRATOR_TEST_APP is not " \
        "set" in result.stderr
    monkeypatch.setenv("MIGRATOR_TEST_APP", "app-Value-77")
    result = run_cli("-c", path, "config", "check")
    assert result.status == ExitStatus.OK and "app-Value" not in result.stdout + result.stderr
