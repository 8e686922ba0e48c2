"""Target connections logged in ahead of the workers, while the push is still planning.

A login costs several round trips (TCP, TLS, the greeting, XOAUTH2, CAPABILITY) and some CPU;
the workers used to pay them only once the folders were listed, planned, re-checked and
reconciled, so the target sat idle for that long (in `migrate`, while the pull was already
committing). Each worker takes the connection opened for its index, or connects itself as
before if that one failed; connections nobody took are logged out at the end.
"""

from __future__ import annotations

import logging
import threading

from migrator.auth import TokenProvider
from migrator.config import Endpoint
from migrator.targets.imap import AppendWriter
from migrator.wire import imapconn

log = logging.getLogger(__name__)


class ReadyConnections:
    """`count` logins started at once, each in a thread of its own."""

    def __init__(self, endpoint: Endpoint, account: str, tokens: TokenProvider | None,
                 count: int) -> None:
        self._where = (endpoint, account, tokens)
        self._writers: list[AppendWriter | None] = [None] * count
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._connect, args=(index,),
                                          name=f"login-{account}-{index}", daemon=True)
                         for index in range(count)]
        for thread in self._threads:
            thread.start()

    def _connect(self, index: int) -> None:
        try:
            writer = AppendWriter(imapconn.connect(*self._where))
        except Exception as exc:  # the worker connects itself, with its retries and messages
            log.info("%s: early target login failed (%s); the worker will connect itself",
                     self._where[1], exc)
            return
        with self._lock:
            self._writers[index] = writer

    def take(self, index: int) -> AppendWriter | None:
        """The connection opened for worker `index` (waiting for its login), once; None if
        there is none (failed, already taken, or no such index)."""
        if index >= len(self._threads):
            return None
        self._threads[index].join()
        with self._lock:
            writer, self._writers[index] = self._writers[index], None
        return writer

    def close(self) -> None:
        """Log out what no worker took."""
        for index in range(len(self._threads)):
            writer = self.take(index)
            if writer is not None:
                writer.close()
