"""One more APPEND for a message the target answered with a plain tagged NO.

A NO without a response code ("NO System I/O error", seen from Cyrus under load just after
a folder was created) says the message was not stored (RFC 3501 6.3.11), so sending it once
more in the same run cannot make a duplicate. Each message gets one such second try, a moment
later; a second NO is recorded failed as before. NOs with a code ([TRYCREATE], [OVERQUOTA],
[LIMIT]...), BAD, refusals and throttling are never retried here. A target that answers
every APPEND so (a full mailbox that says it without a code) costs at most MAX_SECOND_TRIES
waits a connection, not one per message.
"""

from __future__ import annotations

import logging

from migrator.retry import Stop, wait_unless_stopped
from migrator.targets.append_items import PLAIN_NO, AppendOutcome

log = logging.getLogger(__name__)

SECOND_TRY_AFTER = 1.0  # seconds: long enough for a passing server hiccup, short for a run
MAX_SECOND_TRIES = 20  # per connection and run


class SecondTry:
    """Remembers which messages (by their push row) had their second try already."""

    def __init__(self, account: str, stop: Stop) -> None:
        self.account = account
        self.stop = stop
        self.tried: set[int] = set()
        self.spent = False  # MAX_SECOND_TRIES reached (said once)

    def wanted(self, outcome: AppendOutcome) -> bool:
        """True (after a short, stoppable wait) when `outcome` is a plain NO to a message
        not tried again yet: the caller sends it once more."""
        item = outcome.item
        if outcome.status != "failed" or outcome.reason != PLAIN_NO or item.ref in self.tried:
            return False
        if len(self.tried) >= MAX_SECOND_TRIES:
            if not self.spent:
                self.spent = True
                log.warning("%s: the target keeps answering APPEND with NO; no more second "
                            "tries in this run", self.account)
            return False
        self.tried.add(item.ref)
        log.warning("%s: target answered an APPEND to %s with NO %s; nothing was stored, "
                    "sending it once more", self.account, item.folder, outcome.text)
        wait_unless_stopped(SECOND_TRY_AFTER, self.stop)  # stopping: `_send_all` sends no more
        return True
