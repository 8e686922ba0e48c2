"""OAuth2 tokens from MSAL: app-only client credentials (admins) and device code (users).

Tokens (app-only ones too) are cached in a file (mode 0600, written atomically, only when MSAL
says the cache changed) so unattended runs never prompt; `acquire_token_silent` refreshes a
token that is about to expire. App-only tokens are shared by every mailbox of the same app
in a process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrator import redact
from migrator.config import OAuthSettings
from migrator.diskfull import disk_full, is_disk_full
from migrator.durable import atomic_write
from migrator.errors import AuthError, ConnectError, StorageError

if TYPE_CHECKING:  # msal and requests cost ~0.4 s to import: only runs that need a token pay
    import requests

log = logging.getLogger(__name__)

APP_SCOPE = "https://outlook.office365.com/.default"
SHARED_REFRESH_SECONDS = 10.0  # a refresh this recent serves every connection that asks
USER_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
USER_POP_SCOPE = "https://outlook.office.com/POP.AccessAsUser.All"


def default_scopes(settings: OAuthSettings, protocol: str = "imap") -> list[str]:
    if settings.scopes:
        return list(settings.scopes)
    if settings.flow == "client_credentials":
        return [APP_SCOPE]
    return [USER_POP_SCOPE if protocol == "pop3" else USER_SCOPE]


class TokenCacheFile:
    """MSAL's serializable cache persisted to a private file."""

    def __init__(self, path: Path | None, save: bool = True) -> None:
        self.path = path
        self.save_changes = save
        import msal

        self.cache = msal.SerializableTokenCache()
        if path is not None and path.exists():
            self.cache.deserialize(path.read_text(encoding="utf-8"))

    def save(self) -> None:
        if self.path is None or not self.save_changes or not self.cache.has_state_changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, self.cache.serialize().encode("utf-8"), mode=0o600)
        except OSError as exc:  # a full disk or a read-only directory: the old cache stays
            what = f"cannot save token cache {self.path}"
            raise disk_full(what, exc) if is_disk_full(exc) else StorageError(
                f"{what}: {exc.strerror or exc}") from None
        self.cache.has_state_changed = False


def _http_session(settings: OAuthSettings) -> requests.Session:
    import requests

    session = requests.Session()
    if settings.ca_file is not None:  # a private authority (tests, on-premises identity)
        session.verify = str(settings.ca_file)
        session.trust_env = False
    return session


class TokenProvider:
    """Hands out access tokens for one OAuth app (and, for device code, one user)."""

    def __init__(self, settings: OAuthSettings, account: str, protocol: str = "imap") -> None:
        self.settings = settings
        self.account = account
        self.scopes = default_scopes(settings, protocol)
        # app-only tokens are cached too: a re-run within the token's hour asks the identity
        # provider nothing, and the no-op probe (token_cache_read.py) can sign in with it
        self.cache = TokenCacheFile(settings.token_cache, save=settings.save_tokens)
        self._lock = threading.Lock()
        self._app: Any = None
        self._refreshed_at: float | None = None  # monotonic time of the last forced refresh

    def _application(self) -> Any:
        import msal
        import requests

        if self._app is None:
            common: dict[str, Any] = {
                "authority": self.settings.authority_url, "token_cache": self.cache.cache,
                "http_client": _http_session(self.settings),
            }
            if self.settings.authority:  # not Microsoft's cloud: skip instance discovery
                common["instance_discovery"] = False
            try:
                if self.settings.flow == "client_credentials":
                    assert self.settings.client_secret is not None
                    self._app = msal.ConfidentialClientApplication(
                        self.settings.client_id,
                        client_credential=self.settings.client_secret.resolve(), **common)
                else:
                    self._app = msal.PublicClientApplication(self.settings.client_id, **common)
            except (requests.RequestException, ValueError) as exc:
                raise ConnectError(f"{self.account}: cannot reach identity provider "
                                   f"{self.settings.authority_url}: {exc}") from None
        return self._app

    def token(self, force_refresh: bool = False) -> str:
        """A valid access token; `force_refresh` after the server said it expired."""
        return self.token_and_source(force_refresh)[0]

    def token_and_source(self, force_refresh: bool = False) -> tuple[str, bool]:
        """An access token, and whether it came from the cache rather than the identity
        provider just now: MSAL trusts a cached token until five minutes before the expiry
        it was told, but a server may refuse it sooner (revoked, or a clock ahead), and
        only a cached token is worth replacing when a login is refused."""
        import requests

        with self._lock:
            # Connections told "token expired" at the same moment all ask for a refresh; the
            # first one gets a new token and the others take it from the cache.
            if force_refresh and self._refreshed_at is not None \
                    and time.monotonic() - self._refreshed_at < SHARED_REFRESH_SECONDS:
                force_refresh = False
            try:
                result = self._acquire(force_refresh)
                if force_refresh and "access_token" in result:
                    self._refreshed_at = time.monotonic()
            except requests.RequestException as exc:
                raise ConnectError(f"{self.account}: cannot reach identity provider "
                                   f"{self.settings.authority_url}: "
                                   f"{exc.__class__.__name__}") from None
            self.cache.save()
        if "access_token" not in result:
            raise AuthError(f"{self.account}: token refused by {self.settings.authority_url}: "
                            f"{result.get('error', 'unknown error')}: "
                            f"{_first_line(result.get('error_description', ''))}")
        token = str(result["access_token"])
        redact.register(token)
        return token, result.get("token_source") != "identity_provider"

    def _acquire(self, force_refresh: bool) -> dict[str, Any]:
        app = self._application()
        if self.settings.flow == "client_credentials":
            if force_refresh:
                self._drop_access_tokens()
            return app.acquire_token_for_client(scopes=self.scopes) or {}
        accounts = app.get_accounts()
        result = None
        if accounts:
            result = app.acquire_token_silent(self.scopes, account=accounts[0],
                                              force_refresh=force_refresh)
        if not result:
            raise AuthError(f"{self.account}: no saved sign-in; run "
                            f"`migrator auth login {self.account}` once")
        return dict(result)

    def _drop_access_tokens(self) -> None:
        import msal

        cache = self.cache.cache
        for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)

    def login_device_code(self, show: Callable[[str], None]) -> str:
        """Interactive sign-in (device code): show the prompt, wait, save the cache."""
        if self.settings.flow != "device_code":
            raise AuthError(f"{self.account}: `auth login` is for the device_code flow; "
                            "client_credentials needs no sign-in")
        app = self._application()
        flow = app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            raise AuthError(f"{self.account}: device code flow refused: "
                            f"{flow.get('error_description', flow.get('error'))}")
        show(flow["message"])
        result = app.acquire_token_by_device_flow(flow)
        self.cache.save()
        if "access_token" not in result:
            raise AuthError(f"{self.account}: sign-in failed: {result.get('error')}: "
                            f"{_first_line(result.get('error_description', ''))}")
        redact.register(result["access_token"])
        return str(result["access_token"])


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


_shared: dict[tuple[str, ...], TokenProvider] = {}
_shared_lock = threading.Lock()


def token_provider(settings: OAuthSettings, account: str, protocol: str = "imap") -> TokenProvider:
    """One provider per app for client credentials (shared across a batch), else per account."""
    if settings.flow != "client_credentials":
        return TokenProvider(settings, account, protocol)
    secret = settings.client_secret.reference if settings.client_secret else ""
    key = (settings.authority_url, settings.client_id, secret, *default_scopes(settings))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = TokenProvider(settings, account, protocol)
        return _shared[key]
