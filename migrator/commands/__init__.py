"""One module per command; each offers `register(subparsers, common)` setting `func`."""

from migrator.commands import backup, batch, config_check, pull, status, verify

COMMANDS = [config_check, status, verify, pull, backup, batch]
