"""The exception family: each error knows how much work it spoils and which exit code it means.

A loop catches errors of its own scope and goes on with the next item: a malformed message
skips one message, a refused login skips one account, a fatal error stops the run.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes, documented in README."""

    OK = 0
    ERROR = 1  # unexpected internal error (a bug: please report it)
    USAGE = 2  # bad command line
    CONFIG = 3  # configuration file or secret reference is wrong
    PARTIAL = 4  # the run finished, but some messages, folders or accounts failed
    AUTH = 5  # login or token refused
    CONNECTION = 6  # host unreachable, TLS failure, connection lost for good
    VERIFY = 7  # verification found missing, corrupted or extra data
    LOCKED = 8  # another run holds the account's lock
    MANIFEST = 9  # manifest cannot be opened or is newer than this migrator
    STORAGE = 10  # archive cannot be written (disk full, permissions)
    INTERRUPTED = 130  # Ctrl-C / SIGINT


class Scope(enum.Enum):
    """How much work an error spoils."""

    MESSAGE = "message"
    FOLDER = "folder"
    ACCOUNT = "account"
    FATAL = "fatal"


class MigratorError(Exception):
    """Base of every error migrator reports to the user as one line."""

    scope: Scope = Scope.FATAL
    exit_status: ExitStatus = ExitStatus.ERROR


class UsageError(MigratorError):
    """The command line asks for something impossible or contradictory (exit 2, like argparse)."""

    exit_status = ExitStatus.USAGE


UNEXPECTED_TEXT_LIMIT = 300  # characters of an unexpected error's message kept for reports


def unexpected_error_text(exc: BaseException) -> str:
    """One line for an error that is not a MigratorError (a bug), fit for reports and logs.

    The class and the first line of the message only: SQLAlchemy puts the statement and every
    bound parameter (kilobytes of message data) on the lines after the driver's own first
    line, and PostgreSQL's DETAIL line quotes the row's values.
    """
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    for marker in ("[SQL:", "[parameters:"):
        text = text.split(marker, 1)[0].rstrip()
    if len(text) > UNEXPECTED_TEXT_LIMIT:
        text = text[:UNEXPECTED_TEXT_LIMIT - 3] + "..."
    name = exc.__class__.__name__
    return f"{name}: {text}" if text else name


class ConfigError(MigratorError):
    """The configuration is invalid; the message names file and key."""

    exit_status = ExitStatus.CONFIG


class SecretError(ConfigError):
    """A secret reference cannot be resolved (its value is never shown)."""


class ManifestError(MigratorError):
    """The manifest database cannot be opened or upgraded."""

    exit_status = ExitStatus.MANIFEST


class ManifestUnreachableError(ManifestError):
    """The manifest's database server cannot be reached (exit 6, as any unreachable server:
    a later run may work)."""

    exit_status = ExitStatus.CONNECTION


class ManifestTooNewError(ManifestError):
    """The manifest was written by a newer migrator; refusing to touch it."""


class StorageError(MigratorError):
    """The archive cannot be written or read (disk full, permissions, missing directory)."""

    exit_status = ExitStatus.STORAGE


class LockedError(MigratorError):
    """Another migrator process is working on the same account; other accounts go on."""

    scope = Scope.ACCOUNT
    exit_status = ExitStatus.LOCKED


class AccountError(MigratorError):
    """Something stops work on one account; other accounts go on."""

    scope = Scope.ACCOUNT
    exit_status = ExitStatus.PARTIAL


class AuthError(AccountError):
    """The server or identity provider refused our credentials."""

    exit_status = ExitStatus.AUTH


class ConnectError(AccountError):
    """The server cannot be reached, or TLS verification failed."""

    exit_status = ExitStatus.CONNECTION


class SourcePathError(AccountError):
    """A file source's `path` is missing or is not the kind of mail store the config says."""

    exit_status = ExitStatus.CONFIG


class FolderError(MigratorError):
    """One folder cannot be processed; other folders go on."""

    scope = Scope.FOLDER
    exit_status = ExitStatus.PARTIAL


class MessageError(MigratorError):
    """One message cannot be processed; it is recorded and the rest goes on."""

    scope = Scope.MESSAGE
    exit_status = ExitStatus.PARTIAL


class TooBigError(MessageError):
    """The target refuses the message for its size."""


class RetryableError(MigratorError):
    """A failure worth another try (connection lost, throttled, token expired).

    Retry loops catch it; once their attempts are spent it spoils the account's work, like a
    host that cannot be reached.
    """

    scope = Scope.ACCOUNT
    exit_status = ExitStatus.CONNECTION
    retry_after: float | None = None


class Throttled(RetryableError):
    """The server asked us to slow down; `retry_after` is its suggested wait in seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConnectionLost(RetryableError):
    """The connection dropped or the session was ended by the server."""


class TokenExpired(ConnectionLost):
    """Exchange ended the session: `* BYE Session invalidated - AccessTokenExpired`."""


class VerifyError(MigratorError):
    """Verification found differences; the report says which."""

    exit_status = ExitStatus.VERIFY
