"""Where mail goes: IMAP writers (Office 365 preset) that know nothing of the manifest."""

from __future__ import annotations

from migrator.config import Endpoint


def target_identity(endpoint: Endpoint) -> str:
    """How `PushRow.target` names a target: stable across ports (a proxy, a new port) and runs.

    Anything that asks "was this message pushed?" (e.g. POP3 `delete = "after-push"`) must
    use this name.
    """
    if endpoint.kind == "office365":
        return f"office365:{endpoint.username.lower()}"
    return f"imap:{endpoint.username}@{endpoint.host.lower()}"
