"""FaultProxy: a loopback TCP proxy that makes the network and Exchange misbehave.

Runs an asyncio loop in a background thread, listens on a free 127.0.0.1 port
and forwards every connection to (upstream_host, upstream_port).

Network faults, any traffic (TLS passes through as bytes):
  delay      one-way latency per direction, a delay line (throughput kept)
  bandwidth  bytes/s cap per direction
  drop_after_bytes(n, direction, connections)  cut a connection after n bytes

IMAP faults need to see the protocol: use plaintext upstream ports, or
`tls_terminate=True` (clients talk TLS to the proxy with the test cert, the
proxy talks TLS to the upstream, verified with the test CA). After a
successful STARTTLS the proxy stops parsing and only passes bytes.
  throttle(command, ...)        Exchange's "Request is throttled" reply, NO for
                                APPEND and BAD otherwise; the command (and its
                                literals) is swallowed, never forwarded. A
                                synchronizing literal {n} gets the NO instead
                                of "+", as Exchange does; with LITERAL+ {n+}
                                the literal is read and discarded first.
  drop_in_literal(command, ...) cut the connection part-way through the k-th
                                literal: APPEND literals (client to server) or
                                literals inside "* n FETCH" responses.
  drop_at(command, ...)         cut the connection when the client sends the
                                command (it is never forwarded): a link that
                                keeps failing at the same step.
  bye(after_seconds, at_command) Exchange's token-expiry goodbye, "* BYE Session
                                invalidated - AccessTokenExpired", then close:
                                sent unprompted once a connection is
                                `after_seconds` old and logged in (at the
                                next response boundary; a login that took
                                longer gets `after_seconds` from its end),
                                or instead of answering its `at_command`-th
                                command.

Rewriting (`rewrite=` a factory, e.g. a Rewrite subclass): one instance per
connection sees every protocol unit and returns what to forward instead (b""
swallows it) or raises Cut to cut the connection there. Units: with
`imap=False` (POP3, say) each line, both ways; with IMAP each line the client
sends outside literals, and each whole server response, literals included
(buffered, so `drop_in_literal("FETCH")` does not apply to them). A Rewrite
that overrides `client_literal` also gets each literal the client sends, whole
(a synchronizing `{n}` is answered by the proxy's own "+"), and the proxy writes
the new size into the command line, `{n}` and `{n+}` alike: a target that adds
a header to what is APPENDed (tests/world/scanner.py). Changes and
cuts are events ("rewrite"/"cut", direction, connection). Only plaintext can be
rewritten: IMAP stops rewriting at STARTTLS, POP3's STLS is not followed, and
implicit TLS needs `tls_terminate`.

Schedules are deterministic: explicit 1-based ordinals (`nth`) counted over
all connections of the proxy, and/or a seeded random `rate`. Every fault
applied is appended to `events`; `stats` counts connections and commands.
"""
import asyncio
import collections
import random
import ssl
import threading

from .net import HOST
from .relay import Connection, Cut, Rewrite

__all__ = ["Cut", "FaultProxy", "Rewrite", "Schedule"]
LINE_LIMIT = 16 * 1024 * 1024
THROTTLED = b"Request is throttled. Suggested Backoff Time: %d milliseconds"


class Schedule:
    """Decides, for the 1st, 2nd, ... occurrence of something, whether to act."""

    def __init__(self, nth=(), rate=0.0, seed=0):
        self.nth = frozenset(nth)
        self.rate = rate
        self._rng = random.Random(seed)
        self.seen = 0

    def next(self):
        """Count one occurrence; return (ordinal, fire)."""
        self.seen += 1
        draw = self._rng.random() < self.rate if self.rate else False
        return self.seen, self.seen in self.nth or draw


class _Rule:
    def __init__(self, command, schedule, **params):
        self.command = command.upper()
        self.schedule = schedule
        self.__dict__.update(params)

    def matches(self, name):
        return name == self.command or name == "UID " + self.command


class FaultProxy:
    """See the module docstring. start()/stop() or use as a context manager."""

    def __init__(self, upstream_port, upstream_host=HOST, *, delay=0.0, bandwidth=None,
                 imap=True, tls_terminate=False, certs=None, rewrite=None):
        if tls_terminate and certs is None:
            raise ValueError("tls_terminate needs certs")
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.bandwidth = bandwidth
        self.imap = imap
        self.tls_terminate = tls_terminate
        self.certs = certs
        self.rewrite = rewrite  # makes a Rewrite per connection, or None
        self.host = HOST
        self.port = None
        self.events = []
        self.stats = collections.Counter()
        self._throttles = []
        self._literal_drops = []
        self._command_drops = []
        self._byte_drops = []
        self._bye_after = self._bye_at = None
        self._connections = 0
        self._server = None
        self._loop = None
        self._thread = None

    # -- fault configuration (call before or between connections) -------------
    def throttle(self, command, nth=(), rate=0.0, seed=0, backoff_ms=1000, status=None):
        status = status or ("NO" if command.upper() == "APPEND" else "BAD")
        self._throttles.append(_Rule(command, Schedule(nth, rate, seed),
                                     backoff_ms=backoff_ms, status=status))

    def drop_in_literal(self, command, nth=(), rate=0.0, seed=0, fraction=0.5):
        self._literal_drops.append(_Rule(command, Schedule(nth, rate, seed), fraction=fraction))

    def drop_at(self, command, nth=(), rate=0.0, seed=0):
        self._command_drops.append(_Rule(command, Schedule(nth, rate, seed)))

    def drop_after_bytes(self, nbytes, direction="s2c", connections=(1,)):
        if direction not in ("c2s", "s2c"):
            raise ValueError("direction is 'c2s' or 's2c'")
        self._byte_drops.append((nbytes, direction, frozenset(connections)))

    def bye(self, after_seconds=None, at_command=None):
        self._bye_after, self._bye_at = after_seconds, at_command

    def events_of(self, kind):
        return [event[1:] for event in self.events if event[0] == kind]

    # -- decisions, called from the proxy loop -------------------------------
    def _event(self, kind, *detail):
        self.events.append((kind, *detail))
        self.stats[kind] += 1

    def _throttle_reply(self, tag, name):
        for rule in self._throttles:
            if rule.matches(name):
                ordinal, fire = rule.schedule.next()
                if fire:
                    self._event("throttle", name, ordinal)
                    return b"%s %s %s\r\n" % (tag, rule.status.encode(),
                                                  THROTTLED % rule.backoff_ms)
        return None

    def _drop_command(self, name):
        for rule in self._command_drops:
            if rule.matches(name):
                ordinal, fire = rule.schedule.next()
                if fire:
                    self._event("command_drop", name, ordinal)
                    return True
        return False

    def _literal_cut(self, name, size, direction):
        for rule in self._literal_drops:
            if rule.matches(name) and (direction == "s2c") == (rule.command == "FETCH"):
                ordinal, fire = rule.schedule.next()
                if fire:
                    self._event("literal_drop", rule.command, ordinal)
                    return int(size * rule.fraction)
        return None

    def _byte_budget(self, number, direction):
        for nbytes, rule_direction, connections in self._byte_drops:
            if rule_direction == direction and number in connections:
                return nbytes
        return None

    # -- lifecycle -------------------------------------------------------------
    def start(self):
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,),
                                        name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10) or self.port is None:
            raise RuntimeError("fault proxy did not start")
        return self

    def _serve(self, ready):
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(asyncio.start_server(
                self._accept, HOST, 0, ssl=self._server_ssl(), limit=LINE_LIMIT))
            self.port = self._server.sockets[0].getsockname()[1]
        finally:
            ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def _server_ssl(self):
        if not self.tls_terminate:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certs.cert, self.certs.key)
        return context

    def _upstream_ssl(self):
        if not self.tls_terminate:
            return None
        return ssl.create_default_context(cafile=self.certs.ca_cert)

    async def _accept(self, reader, writer):
        self._connections += 1
        self.stats["connections"] += 1
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(
                *self.upstream, ssl=self._upstream_ssl(), limit=LINE_LIMIT), 10)
            await Connection(self, self._connections, (reader, writer), upstream).run()
        except (TimeoutError, OSError):
            self.stats["upstream_failures"] += 1
            writer.close()
        except asyncio.CancelledError:
            writer.transport.abort()  # proxy stopping; end quietly

    async def _shutdown(self):
        self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for _ in range(3):  # let the aborted transports run connection_lost
            await asyncio.sleep(0)

    def stop(self):
        if self._thread is None:
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
