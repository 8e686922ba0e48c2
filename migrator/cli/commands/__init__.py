"""One module per command; each offers `register(subparsers, common)` setting `func`."""

from migrator.cli.commands import (
    auth,
    backup,
    batch,
    config_check,
    export,
    migrate,
    pull,
    push,
    repair,
    status,
    verify,
    worker,
)

COMMANDS = [config_check, status, verify, repair, pull, backup, batch, push, migrate, export,
            auth, worker]
