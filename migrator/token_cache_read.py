"""A still-valid access token read from MSAL's token cache file, without loading MSAL.

For the no-op probe, which must sign in at the target before the full path pays for MSAL
and requests. The file is MSAL's own (auth.TokenCacheFile writes it, 0600) in MSAL's unified
cache schema: "AccessToken" entries with secret, expires_on, client_id, environment, realm
and target. An entry is taken only as MSAL itself would take it: same app, same authority
host and tenant, every scope asked for, and at least five minutes before its expiry (and
not past its refresh_on). Anything else, or any doubt, is None: the full path then asks MSAL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from migrator import redact
from migrator.config import OAuthSettings

MARGIN = 5 * 60  # seconds before expiry at which MSAL no longer hands a cached token out


def cached_access_token(settings: OAuthSettings, scopes: Sequence[str],
                        now: float | None = None) -> str | None:
    """The secret of a cached access token MSAL would still use, registered for redaction."""
    if settings.token_cache is None:
        return None
    try:
        entries = json.loads(settings.token_cache.read_text(encoding="utf-8"))["AccessToken"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    host, tenant = _authority(settings.authority_url)
    moment = time.time() if now is None else now
    if not isinstance(entries, dict) or host is None:
        return None
    for entry in entries.values():
        if isinstance(entry, dict) and _usable(entry, settings, scopes, host, tenant, moment):
            secret = str(entry["secret"])
            redact.register(secret)
            return secret
    return None


def _authority(url: str) -> tuple[str | None, str]:
    """(host, tenant) of an authority URL as MSAL names them in its cache."""
    parsed = urlparse(url)
    parts = parsed.path.split("/")
    if parsed.scheme != "https" or not parsed.hostname or len(parts) < 2 or not parts[1]:
        return None, ""
    return parsed.hostname.lower(), parts[1]


def _usable(entry: dict[str, Any], settings: OAuthSettings, scopes: Sequence[str], host: str,
            tenant: str, now: float) -> bool:
    try:
        expires_on = int(entry["expires_on"])
        refresh_on = int(entry.get("refresh_on", expires_on))
        granted = set(str(entry.get("target", "")).split())
        return (entry.get("credential_type") == "AccessToken"
                and entry.get("client_id") == settings.client_id
                and str(entry.get("environment", "")).lower() == host
                and entry.get("realm") == tenant
                and set(scopes) <= granted
                and bool(entry.get("secret"))
                and expires_on - now >= MARGIN and refresh_on > now)
    except (KeyError, TypeError, ValueError):
        return False
