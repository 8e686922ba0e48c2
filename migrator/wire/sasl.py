"""SASL XOAUTH2's client response (Microsoft's and Google's OAuth2 sign-in for IMAP and POP3):
built in one place for every protocol and connection kind that signs in with a token. It
holds the token: send it, never log it."""

from __future__ import annotations

import base64


def xoauth2_response(user: str, token: str) -> bytes:
    """base64 of `user=USER^Aauth=Bearer TOKEN^A^A`."""
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())
