"""What a server's words mean when they are worth another try.

Apart from imapconn so that the response reader (and the no-op probe) can classify a reply
without loading imapclient and MSAL.
"""

from __future__ import annotations

from migrator.errors import Throttled, TokenExpired
from migrator.retry import throttle_backoff

NOT_CONNECTED = "User is authenticated but not connected"
TOKEN_EXPIRED = "AccessTokenExpired"


def as_text(value: object) -> str:
    """A word of a server's reply as a library hands it over (bytes or already text)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def retryable_reply(text: str) -> Throttled | TokenExpired | None:
    """What a server's words mean when they are worth another try: Exchange's throttling
    (with its suggested wait), a session it does not want now, an expired token."""
    backoff = throttle_backoff(text)
    if backoff is not None:
        return Throttled(text, backoff)
    if NOT_CONNECTED in text:
        return Throttled(text, None)
    if TOKEN_EXPIRED in text:
        return TokenExpired(text)
    return None
