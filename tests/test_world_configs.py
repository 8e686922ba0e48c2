"""Self-tests of tests/world/configs.py: the TOML it writes is what was meant, and every key
it can write is one migrator's config loader knows."""
import tomllib
from pathlib import Path

import pytest

from migrator import config as migrator_config
from tests.world.configs import Account, Batch, Config, Endpoint, OAuth, dumps

AWKWARD = 'a "quoted" C:\\path\twith\ttabs\nlines, \x01\x7f and Ümläute €'


def test_strings_keys_and_values_round_trip_through_toml():
    table = {"archive": {"path": AWKWARD, "n": 3, "x": 2.5, "on": True, "off": False},
             "accounts": {"bob.smith": {"source": {"include": ["A", AWKWARD], "kind": "imap",
                                                   "folder map": {"a/b": "c"}}},
                          "ann": {"source": {"kind": "pop3"}}},
             "empty": {}}
    assert tomllib.loads(dumps(table)) == table


def test_paths_become_strings_and_none_leaves_a_key_out(tmp_path):
    config = Config(tmp_path / "archive", {"bob": Account(Endpoint("pop3", port=110))})
    assert tomllib.loads(config.text()) == {
        "archive": {"path": str(tmp_path / "archive")},
        "accounts": {"bob": {"source": {"kind": "pop3", "port": 110, "host": "127.0.0.1"}}}}


def test_unwritable_values_are_refused():
    with pytest.raises(TypeError, match="no TOML for object"):
        dumps({"a": {"b": object()}})


def test_every_field_is_a_key_migrator_loads(tmp_path):
    oauth = OAuth(authority="https://127.0.0.1:1/tenant", ca_file=tmp_path / "ca.pem",
                  client_id="app-id", client_secret="env:SECRET")
    source = Endpoint("pop3", port=995, username="bob", security="tls", auth="password",
                      password="file:" + AWKWARD, ca_file=tmp_path / "c a.pem", timeout=20,
                      connections=3, include=("INBOX",), exclude=("Junk",),
                      delete="after-archive", delete_after_days=7,
                      options={"tls_verify": False})
    target = Endpoint("office365", port=993, username="bob@contoso.test", oauth=oauth,
                      options={"folder_map": {"Sent": "Sent Items"}})
    batch = Batch(Endpoint("imap", port=143, security="plain"),
                  Endpoint("office365", oauth=oauth), parallel=2, report_dir=tmp_path / "r")
    database = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    path = Config(tmp_path / "archive", {"bob": Account(source, target)}, batch,
                  database, search_index=False).write(tmp_path / "migrator.toml")

    settings = migrator_config.load(path)

    got = settings.accounts["bob"]
    assert (got.source.kind, got.source.port, got.source.username) == ("pop3", 995, "bob")
    assert (got.source.security, got.source.auth, got.source.timeout) == ("tls", "password", 20)
    assert got.source.ca_file == tmp_path / "c a.pem" and got.source.tls_verify is False
    assert (got.source.connections, got.source.include, got.source.exclude) == (
        3, ("INBOX",), ("Junk",))
    assert (got.source.delete.mode, got.source.delete.after_days) == ("after-archive", 7)
    assert got.target is not None and got.target.oauth is not None
    assert got.target.folder_map == {"Sent": "Sent Items"}
    assert (got.target.oauth.client_id, got.target.oauth.authority) == (
        "app-id", "https://127.0.0.1:1/tenant")
    assert got.target.oauth.ca_file == Path(tmp_path / "ca.pem")
    assert (settings.batch.parallel, settings.batch.report_dir) == (2, tmp_path / "r")
    assert settings.batch.source == {"kind": "imap", "port": 143, "security": "plain",
                                     "host": "127.0.0.1"}
    assert (settings.archive.path, settings.archive.database) == (tmp_path / "archive",
                                                                  database)
    assert settings.archive.search_index is False
