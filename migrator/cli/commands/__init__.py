"""One module per command; each offers `register(subparsers, common)` setting `func`."""

from migrator.cli.commands import (
    auth,
    backup,
    batch,
    config_check,
    export,
    index,
    migrate,
    pull,
    push,
    repair,
    search,
    show,
    status,
    verify,
)

COMMANDS = [config_check, status, verify, repair, pull, backup, batch, push, migrate, export,
            auth, search, show, index]
