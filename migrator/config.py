"""TOML configuration -> typed settings.

Every error names the file and the dotted key. Unknown keys are errors too: a typo such as
`delet = "after-archive"` must not silently leave mail on (or take it off) a server.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.errors import ConfigError
from migrator.secrets import Secret

FILE_KINDS = ("mbox", "maildir", "eml", "pst")  # sources read from `path` (sources/files READERS)
SOURCE_KINDS = ("imap", "pop3", "office365", *FILE_KINDS)
TARGET_KINDS = ("imap", "office365")
SECURITIES = ("tls", "starttls", "plain")
DELETE_POLICIES = ("never", "after-archive", "after-push")
OAUTH_FLOWS = ("client_credentials", "device_code")
COMPRESSIONS = ("none", "gzip")

OFFICE365_HOST = "outlook.office365.com"
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_PORTS = {
    ("imap", "tls"): 993, ("imap", "starttls"): 143, ("imap", "plain"): 143,
    ("pop3", "tls"): 995, ("pop3", "starttls"): 110, ("pop3", "plain"): 110,
}
MAX_PORT = 65535
_MISSING: Any = object()


@dataclass(frozen=True)
class OAuthSettings:
    """How to get an OAuth2 token from Microsoft identity (or a compatible authority)."""

    flow: str
    client_id: str
    tenant: str = "organizations"
    client_secret: Secret | None = None
    authority: str = ""
    scopes: tuple[str, ...] = ()
    token_cache: Path | None = None
    ca_file: Path | None = None
    save_tokens: bool = True  # False for a dry run: a refreshed token is used, not saved

    @property
    def authority_url(self) -> str:
        return self.authority or f"{MICROSOFT_AUTHORITY}/{self.tenant}"


@dataclass(frozen=True)
class DeletePolicy:
    """When a POP3 source may delete a message: never, unless the config says so."""

    mode: str = "never"
    after_days: int = 0


@dataclass(frozen=True)
class Endpoint:
    """A server migrator reads from (source) or writes to (target)."""

    kind: str
    host: str
    port: int
    security: str = "tls"
    username: str = ""
    password: Secret | None = None
    auth: str = "password"
    oauth: OAuthSettings | None = None
    tls_verify: bool = True
    ca_file: Path | None = None
    timeout: float = 60.0
    connections: int = 2
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    folder_map: Mapping[str, str] = field(default_factory=dict)
    delete: DeletePolicy = field(default_factory=DeletePolicy)
    path: Path | None = None  # file sources (FILE_KINDS): the file or directory read

    @property
    def protocol(self) -> str:
        return "pop3" if self.kind == "pop3" else "imap"

    @property
    def is_file(self) -> bool:
        return self.kind in FILE_KINDS


@dataclass(frozen=True)
class Account:
    name: str
    source: Endpoint
    target: Endpoint | None = None


@dataclass(frozen=True)
class ArchiveSettings:
    path: Path
    database: str
    compression: str = "none"
    search_index: bool = True  # index messages as they are archived (`migrator search`)
    # ... by `migrate`, `batch run` and `worker` too; by default they leave it to the first
    # `search` (or `migrator index`): its process took 0.96 of a bench migrate's 5.45 CPU s
    index_during_migrate: bool = False


@dataclass(frozen=True)
class BatchSettings:
    """Defaults that every row of a batch CSV is merged into."""

    parallel: int = 4
    report_dir: Path | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    target: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Settings:
    file: Path
    archive: ArchiveSettings
    accounts: Mapping[str, Account]
    batch: BatchSettings = field(default_factory=BatchSettings)

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ConfigError(f"{self.file}: no account named {name!r} (known: {known})") from None


class Table:
    """A TOML table that knows where it came from, so every error can name file and key."""

    def __init__(self, data: Mapping[str, Any], file: Path, prefix: str = "") -> None:
        self.data = data
        self.file = file
        self.prefix = prefix
        self._read: set[str] = set()

    def where(self, key: str) -> str:
        if not key:
            return self.prefix
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.where(key)}: {problem}")

    def _get(self, key: str, default: Any, types: tuple[type, ...], kind: str) -> Any:
        self._read.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "is required" + self._typo_of(key))
            return default
        value = self.data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.error(key, f"must be {kind}, got {value!r}")
        return value

    def text(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default, (str,), "a string")

    def _typo_of(self, key: str) -> str:
        """A hint naming a key the table has that looks like the missing `key` (`usrname`)."""
        unread = [name for name in self.data if name not in self._read]
        close = difflib.get_close_matches(key, unread, n=1, cutoff=0.75)
        return f" (found {close[0]!r}: did you mean {key!r}?)" if close else ""

    def integer(self, key: str, default: Any = _MISSING, minimum: int = 0,
                maximum: int | None = None) -> Any:
        value = self._get(key, default, (int,), "an integer")
        if value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        if value is not None and maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum}, got {value}")
        return value

    def number(self, key: str, default: Any = _MISSING) -> Any:
        return float(self._get(key, default, (int, float), "a number"))

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default, (bool,), "true or false")

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.text(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, list(default), (list,), "a list of strings")
        if not all(isinstance(item, str) for item in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)

    def path(self, key: str, default: Any = _MISSING) -> Path | None:
        value = self.text(key, default)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.file.parent / path)

    def secret(self, key: str) -> Secret | None:
        value = self.text(key, None)
        return None if value is None else Secret(value, where=f"{self.file}: {self.where(key)}")

    def table(self, key: str, required: bool = False) -> Table | None:
        value = self._get(key, _MISSING if required else None, (dict,), "a table")
        return None if value is None else Table(value, self.file, self.where(key))

    def mapping(self, key: str) -> dict[str, str]:
        value = self._get(key, {}, (dict,), "a table of strings")
        if not all(isinstance(v, str) for v in value.values()):
            raise self.error(key, "must map folder names to folder names (strings)")
        return dict(value)

    def tables(self) -> Iterator[tuple[str, Table]]:
        for key in self.data:
            table = self.table(key, required=True)
            assert table is not None
            yield key, table

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(self._read), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "a typo?"
            raise self.error(unknown[0], f"unknown key ({hint})")


def load(file: str | Path) -> Settings:
    """Read and validate a config file."""
    path = Path(file).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, path.resolve())


def parse(data: Mapping[str, Any], file: Path) -> Settings:
    top = Table(data, file)
    archive_table = top.table("archive", required=True)
    assert archive_table is not None
    archive = parse_archive(archive_table)
    accounts: dict[str, Account] = {}
    accounts_table = top.table("accounts")
    if accounts_table is not None:
        for name, table in accounts_table.tables():
            accounts[name] = parse_account(name, table, archive)
    batch_table = top.table("batch")
    batch = parse_batch(batch_table, archive) if batch_table else BatchSettings(
        report_dir=archive.path / "reports")
    top.check_unknown()
    return Settings(file=file, archive=archive, accounts=accounts, batch=batch)


def parse_batch(table: Table, archive: ArchiveSettings) -> BatchSettings:
    """Batch defaults; the endpoint tables are checked when merged with each CSV row."""
    source = table.table("source")
    target = table.table("target")
    settings = BatchSettings(
        parallel=table.integer("parallel", 4, minimum=1),
        report_dir=table.path("report_dir", None) or archive.path / "reports",
        source=dict(source.data) if source else {},
        target=dict(target.data) if target else None,
    )
    table.check_unknown()
    return settings


def parse_archive(table: Table) -> ArchiveSettings:
    path = table.path("path")
    assert path is not None
    database = table.text("database", "") or f"sqlite:///{path / 'manifest.sqlite'}"
    compression = table.choice("compression", COMPRESSIONS, "none")
    search_index = table.flag("search_index", True)
    index_during_migrate = table.flag("index_during_migrate", False)
    table.check_unknown()
    return ArchiveSettings(path=path, database=database, compression=compression,
                           search_index=search_index,
                           index_during_migrate=index_during_migrate)


def parse_account(name: str, table: Table, archive: ArchiveSettings) -> Account:
    if not name or "/" in name or name.startswith("."):
        raise table.error("", f"account name {name!r} must be non-empty, without '/'")
    source_table = table.table("source", required=True)
    assert source_table is not None
    source = parse_endpoint(source_table, SOURCE_KINDS, name, archive)
    target_table = table.table("target")
    target = None
    if target_table is not None:
        target = parse_endpoint(target_table, TARGET_KINDS, name, archive)
    if source.delete.mode == "after-push" and target is None:
        raise ConfigError(f"{table.file}: {table.where('source.delete')}: \"after-push\" "
                          f"needs a [{table.where('target')}] table to push to")
    table.check_unknown()
    return Account(name=name, source=source, target=target)


def parse_endpoint(table: Table, kinds: tuple[str, ...], account: str,
                   archive: ArchiveSettings) -> Endpoint:
    kind = table.choice("kind", kinds)
    if kind in FILE_KINDS:
        return parse_file_source(table, kind)
    office365 = kind == "office365"
    protocol = "pop3" if kind == "pop3" else "imap"
    security = table.choice("security", SECURITIES, "tls")
    host = table.text("host", OFFICE365_HOST if office365 else _MISSING)
    port = table.integer("port", DEFAULT_PORTS[(protocol, security)], minimum=1,
                         maximum=MAX_PORT)
    auth = table.choice("auth", ("password", "xoauth2"), "xoauth2" if office365 else "password")
    username = table.text("username")
    password = table.secret("password")
    oauth_table = table.table("oauth")
    oauth = None
    if oauth_table is not None:
        oauth = parse_oauth(oauth_table, account, archive)
    if auth == "xoauth2" and oauth is None:
        raise table.error("oauth", f"is required when auth is xoauth2 (kind {kind})")
    if auth == "password" and password is None:
        raise table.error("password", "is required for password authentication "
                          "(use env:NAME, file:PATH or keyring:SERVICE/USER)")
    delete = DeletePolicy()
    if protocol == "pop3":
        delete = DeletePolicy(table.choice("delete", DELETE_POLICIES, "never"),
                              table.integer("delete_after_days", 0))
    endpoint = Endpoint(
        kind=kind, host=host, port=port, security=security, username=username,
        password=password, auth=auth, oauth=oauth,
        tls_verify=table.flag("tls_verify", True), ca_file=table.path("ca_file", None),
        timeout=table.number("timeout", 60.0),
        connections=table.integer("connections", 4 if office365 else 2, minimum=1),
        include=table.strings("include", ("*",)), exclude=table.strings("exclude", ()),
        folder_map=table.mapping("folder_map"), delete=delete,
    )
    table.check_unknown()
    return endpoint


def parse_file_source(table: Table, kind: str) -> Endpoint:
    """A source read from files: a path instead of a host, no login."""
    if "path" not in table.data:
        raise table.error("path", f"is required for a {kind} source (the {kind} file or "
                          "directory to import)" + table._typo_of("path"))
    path = table.path("path")
    assert path is not None
    endpoint = Endpoint(kind=kind, host="", port=0, path=path,
                        include=table.strings("include", ("*",)),
                        exclude=table.strings("exclude", ()),
                        folder_map=table.mapping("folder_map"))
    table.check_unknown()
    return endpoint


def parse_oauth(table: Table, account: str, archive: ArchiveSettings) -> OAuthSettings:
    flow, secret = table.choice("flow", OAUTH_FLOWS), table.secret("client_secret")
    if flow == "client_credentials" and secret is None:
        raise table.error("client_secret", "is required for the client_credentials flow")
    client_id = table.text("client_id")  # app-only tokens: one file per app, apart from users'
    name = account if flow == "device_code" else "app-" + client_id.replace("/", "_")
    cache = table.path("token_cache", None) or archive.path / "tokens" / f"{name}.json"
    settings = OAuthSettings(
        flow=flow, client_id=client_id, tenant=table.text("tenant", "organizations"),
        client_secret=secret, authority=table.text("authority", ""),
        scopes=table.strings("scopes", ()), token_cache=cache, ca_file=table.path("ca_file", None),
    )
    table.check_unknown()
    return settings


def secrets_in(settings: Settings) -> list[Secret]:
    """Every secret the config names: the accounts' and the `[batch]` tables' defaults."""
    found = []
    for account in settings.accounts.values():
        for endpoint in (account.source, account.target):
            if endpoint is None:
                continue
            for secret in (endpoint.password, endpoint.oauth and endpoint.oauth.client_secret):
                if secret:
                    found.append(secret)
    for side, table in (("source", settings.batch.source), ("target", settings.batch.target)):
        oauth = (table or {}).get("oauth")
        for key, value in (("password", (table or {}).get("password")),
                           ("oauth.client_secret", isinstance(oauth, dict)
                            and oauth.get("client_secret"))):
            if isinstance(value, str):
                found.append(Secret(value, where=f"{settings.file}: batch.{side}.{key}"))
    return found


def literal_secrets(settings: Settings) -> list[str]:
    """Config keys holding a literal secret instead of a reference, for a warning."""
    return [secret.where for secret in secrets_in(settings) if secret.is_literal]
