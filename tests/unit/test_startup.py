"""Start-up stays light: a re-run with nothing to do loads only what its command needs.

Checked as the set of modules a fresh interpreter has loaded (never as a time): a `backup`
against an up-to-date manifest loads no Alembic, no MSAL/requests, no tqdm off a terminal,
and none of the push, export or repair machinery.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from migrator.cli.main import build_parser, command_named
from tests.world.configs import Account, Config, Endpoint
from tests.world.net import free_port

ROOT = Path(__file__).resolve().parents[2]
NEVER_FOR_BACKUP = ("alembic", "msal", "requests", "tqdm", "sqlalchemy.dialects.postgresql",
                    "migrator.engine.push", "migrator.engine.export", "migrator.engine.repair",
                    "migrator.engine.pop3", "migrator.cli.commands.export")

RUN_AND_LIST = """
import json, sys
from migrator.cli.main import run
status = run(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def loaded(*argv: str | Path) -> tuple[int, set[str]]:
    """Run migrator in a fresh interpreter; its exit status and every module it loaded."""
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    answer = json.loads(done.stdout.splitlines()[-1])
    return answer["status"], set(answer["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules
                  if any(m == bad or m.startswith(bad + ".") for bad in NEVER_FOR_BACKUP))


def test_a_backup_against_an_up_to_date_manifest_loads_nothing_heavy(tmp_path):
    source = Endpoint("imap", port=free_port(), security="plain", username="u",
                      password="secret", timeout=2)  # nobody listens: the run ends at connect
    config = Config(tmp_path / "archive", {"bob": Account(source)}).write(tmp_path / "m.toml")
    first_status, first = loaded("-c", config, "-q", "backup", "bob")
    assert first_status != 0 and (tmp_path / "archive" / "manifest.sqlite").exists()
    assert "alembic" not in first  # a new manifest is made from the models (schema_new.py)

    status, modules = loaded("-c", config, "-q", "backup", "bob")

    assert status == first_status
    assert "sqlalchemy" in modules and "migrator.engine.imap.pull" in modules
    assert heavy(modules) == []


def test_only_the_named_command_is_loaded():
    assert command_named(["-c", "migrate", "-q", "backup", "--all"]) == "backup"
    assert command_named(["--log-file", "push", "verify"]) == "verify"
    assert command_named(["--help"]) is None and command_named(["nonsense"]) is None
    one = build_parser(["backup", "--all"])
    everything = build_parser()
    assert one.parse_args(["backup", "--all"]).command == "backup"
    assert len(everything.format_help()) > len(one.format_help())


NEVER_FOR_THE_MIGRATE_PROBE = ("sqlalchemy", "alembic", "imapclient", "msal", "requests",
                               "migrator.engine.push.job", "migrator.engine.migrate")


def test_the_migrate_command_and_its_no_op_probe_load_nothing_heavy():
    """What `migrate` loads before its no-op probe has settled the run (or declined): the
    settled run itself is checked end to end in tests/integration/test_migrate_noop_probe.py."""
    code = ("import json, sys\n"
            "import migrator.cli.main, migrator.cli.commands.migrate\n"
            "import migrator.engine.migrate_probe\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "migrator.engine.verify.quick_gate" in modules
    assert sorted(m for m in modules if any(m == bad or m.startswith(bad + ".")
                                            for bad in NEVER_FOR_THE_MIGRATE_PROBE)) == []
