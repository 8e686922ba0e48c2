"""What every privately run test server shares: a temp dir of its own, free loopback ports,
a master process in its own session, and a few start attempts when a port was taken.

A subclass says how to lay out its dir, write its config (picking ports), which command
runs it and where that writes its log; `stop()` stays its own (each server leaves in its own
way).
"""

import contextlib
import os
import signal
import subprocess
import tempfile

from tests.world.net import listening_inodes, port_open, wait_until


class PrivateServer:
    name = "server"  # in temp dir names and error messages
    start_timeout = 10  # seconds until every port accepts
    start_attempts = 3

    dir = None
    proc = None
    port_taken = False  # the last start found one of its ports held by another process

    def _path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- what a subclass provides ----------------------------------------------------
    def _prepare_dir(self):
        """Sub-directories and files the server needs before its first start."""

    def _configure(self):
        """Pick free ports and write the config that names them."""
        raise NotImplementedError

    def _ports(self):
        raise NotImplementedError

    def _command(self):
        raise NotImplementedError

    def _spawn_log(self):
        """The file the master's stdout and stderr go to."""
        raise NotImplementedError

    def _spawn_env(self):
        return None  # inherit

    def _may_retry(self):
        """After a start that failed: was it a port taken meanwhile (worth another go)?"""
        return True

    def _failure(self):
        return f"{self.name} failed to start"

    def stop(self):
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------
    def start(self):
        self.dir = tempfile.mkdtemp(prefix=f"migrator-{self.name}-")
        os.chmod(self.dir, 0o755)
        try:
            self._prepare_dir()
            for attempt in range(self.start_attempts):
                self._configure()
                if self._spawn():
                    return self
                if attempt == self.start_attempts - 1 or not (self.port_taken
                                                              or self._may_retry()):
                    raise RuntimeError(self._failure())
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self):
        """Start the master; True once all ports accept, False if it exited (port taken)."""
        with open(self._spawn_log(), "wb") as log:
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self._spawn_env(),
                                         start_new_session=True)
        self._started(self.proc)

        def ready():
            return self.proc.poll() is not None or all(map(port_open, self._ports()))

        wait_until(ready, self.start_timeout, what=f"{self.name} ports")
        if self.proc.poll() is None and all(map(self._listens_itself, self._ports())):
            return True
        self.port_taken = self.proc.poll() is None  # a port answered, but not from the master
        if self.port_taken:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        return False

    def _listens_itself(self, port):
        """Whether the master holds the socket listening on `port` (Cyrus's master starts
        even when a port is taken: it leaves that service out, and another process would
        answer there). Assumed where /proc cannot tell."""
        inodes = listening_inodes(port)
        if inodes is None:
            return True
        try:
            fds = os.listdir(f"/proc/{self.proc.pid}/fd")
        except OSError:
            return True
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{self.proc.pid}/fd/{fd}") in inodes:
                    return True
        return False

    def _started(self, proc):
        """Called with each master process as it starts."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
