"""What Exchange Online does differently from other IMAP servers, in one place.

The preset itself (host `outlook.office365.com`, port 993, XOAUTH2, 4 connections) lives in
`migrator.config`; folder names in `migrator.folders`. This module reads Exchange's replies:
which ones mean "too big" (refuse the message, report it, go on), which mean "slow down", and
what Exchange needs after an APPEND (`\\Flagged` is not reliably kept from the APPEND itself).
"""

from __future__ import annotations

import re

from migrator.config import Endpoint
from migrator.retry import throttle_backoff

NOT_CONNECTED = "User is authenticated but not connected"
TOKEN_EXPIRED = "AccessTokenExpired"
# `NO Maximum size of appendable message has been exceeded`; `BAD Command Argument Error. 11`
# also covers quota and over-long lines; RFC 5530 [LIMIT]/[OVERQUOTA] from other servers.
_REFUSED = re.compile(r"Maximum size of appendable message|Command Argument Error\. ?11|"
                      r"\[(?:LIMIT|OVERQUOTA|TOOBIG)\]|"
                      # Cyrus refuses some content for good, with a plain NO and no code
                      r"Message contains (?:bare newlines|NUL characters|invalid header|"
                      r"non-ASCII characters)|Message has no header/body separator",
                      re.IGNORECASE)
_TOO_BIG = re.compile(r"Maximum size|too large|too big|\[TOOBIG\]|size", re.IGNORECASE)


def is_office365(endpoint: Endpoint) -> bool:
    return endpoint.kind == "office365"


def refusal(text: str) -> str | None:
    """'too-big' or 'refused' when a reply refuses this one message for good, else None."""
    if throttle_backoff(text) is not None or not _REFUSED.search(text):
        return None
    return "too-big" if _TOO_BIG.search(text) else "refused"


def is_throttled(text: str) -> bool:
    """Exchange's 'slow down' replies: match the text, never the status (BAD or NO)."""
    return throttle_backoff(text) is not None or NOT_CONNECTED in text


def store_flagged_after_append(endpoint: Endpoint) -> bool:
    """Exchange may drop `\\Flagged` given at APPEND: set it again with STORE."""
    return is_office365(endpoint)


def byte_comparable(endpoint: Endpoint) -> bool:
    """Exchange re-renders MIME from its store: its bytes never equal what was appended."""
    return not is_office365(endpoint)
