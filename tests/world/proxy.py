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
                                `after_seconds` old (at the next response
                                boundary), or instead of answering its
                                `at_command`-th command.

Schedules are deterministic: explicit 1-based ordinals (`nth`) counted over
all connections of the proxy, and/or a seeded random `rate`. Every fault
applied is appended to `events`; `stats` counts connections and commands.
"""
import asyncio
import collections
import contextlib
import random
import re
import ssl
import threading

from .net import HOST

CHUNK = 64 * 1024
LINE_LIMIT = 16 * 1024 * 1024
PIPE_BYTES = 16 * 1024 * 1024  # queued per direction before the reader waits
BYE = b"* BYE Session invalidated - AccessTokenExpired\r\n"
THROTTLED = b"Request is throttled. Suggested Backoff Time: %d milliseconds"
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
_FETCH = re.compile(rb"^\* \d+ FETCH ", re.I)


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


class _Drop(Exception):
    """Tear the connection down now (after flushing what was already sent)."""


class _Pipe:
    """One direction: a delay line with optional pacing and a byte budget."""

    def __init__(self, writer, delay, bandwidth, budget=None, on_cut=None):
        self.writer = writer
        self.delay = delay
        self.bandwidth = bandwidth
        self.budget = budget  # bytes left before the connection is cut
        self.on_cut = on_cut
        self.broken = False
        self.queue = asyncio.Queue()
        self.queued = 0
        self.room = asyncio.Event()
        self.room.set()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def send(self, data):
        """Queue data; raise _Drop once the byte budget is used up."""
        cut = self.budget is not None and len(data) >= self.budget
        if cut:
            data = data[:self.budget]
        elif self.budget is not None:
            self.budget -= len(data)
        while self.queued > PIPE_BYTES:
            self.room.clear()
            await self.room.wait()
        step = CHUNK if self.bandwidth is None else 16 * 1024
        due = asyncio.get_running_loop().time() + self.delay
        for i in range(0, len(data), step):
            self.queue.put_nowait((due, data[i:i + step]))
        self.queued += len(data)
        if cut:
            self.on_cut()
            raise _Drop("byte budget")

    async def _run(self):
        loop = asyncio.get_running_loop()
        next_free = 0.0
        held = None  # an item taken from the queue before it was due
        while True:
            due, data = held or await self.queue.get()
            held = None
            if data is None:
                return
            start = max(due, next_free)
            if start > loop.time():
                await asyncio.sleep(start - loop.time())
            if self.bandwidth:
                await self._write(data)
                next_free = max(start, loop.time()) + len(data) / self.bandwidth
            else:
                data, held = self._coalesce(data, loop.time())
                await self._write(data)

    def _coalesce(self, data, now):
        """Join queued chunks that are already due (one write instead of
        one sleep+write per IMAP line); return them and the first item that
        is not due yet."""
        parts = [data]
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item[1] is None or item[0] > now:
                return b"".join(parts), item
            parts.append(item[1])
        return b"".join(parts), None

    async def _write(self, data):
        self.queued -= len(data)
        if self.queued <= PIPE_BYTES:
            self.room.set()
        if self.broken:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.broken = True  # the peer is gone; keep draining the queue

    async def close(self):
        """Deliver what is queued (bounded), then close."""
        self.queue.put_nowait((0.0, None))
        try:
            await asyncio.wait_for(self.task, 10)
        except TimeoutError:
            self.task.cancel()
        self.writer.close()
        with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    def abort(self):
        self.task.cancel()
        self.writer.transport.abort()


def _command_name(line):
    parts = line.rstrip(b"\r\n").split(b" ", 3)
    if len(parts) < 2 or not parts[1].isalpha():
        return None, None
    name = parts[1].upper()
    if name == b"UID" and len(parts) > 2:
        name += b" " + parts[2].upper()
    return parts[0], name.decode()


async def _readline(reader):
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return b""


class _Connection:
    """One proxied connection; parses IMAP in both directions unless raw."""

    def __init__(self, proxy, number, client, upstream):
        self.proxy = proxy
        self.number = number
        self.client_reader, client_writer = client
        self.up_reader, up_writer = upstream
        self.to_server = self._pipe(up_writer, "c2s")
        self.to_client = self._pipe(client_writer, "s2c")
        self.raw = not proxy.imap
        self.pending = None  # (tag, kind, future) while the client waits on the server
        self.s2c_lock = asyncio.Lock()
        self.commands = 0

    def _pipe(self, writer, direction):
        budget = self.proxy._byte_budget(self.number, direction)

        def on_cut():
            self.proxy._event("byte_drop", direction, self.number, budget)

        return _Pipe(writer, self.proxy.delay, self.proxy.bandwidth, budget, on_cut)

    async def run(self):
        """Relay until either side ends or a fault drops the connection;
        then deliver what was already queued and close both sides."""
        tasks = [asyncio.ensure_future(self._c2s()), asyncio.ensure_future(self._s2c())]
        if self.proxy._bye_after is not None:
            tasks.append(asyncio.ensure_future(self._bye_timer(self.proxy._bye_after)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.to_client.close()
            await self.to_server.close()
        finally:  # also when the proxy stops: leave no transport open
            for task in tasks:
                task.cancel()
            self.to_client.abort()
            self.to_server.abort()

    # -- client to server ----------------------------------------------------
    async def _c2s(self):
        while True:
            if self.raw:
                data = await self.client_reader.read(CHUNK)
                if not data:
                    return
                await self.to_server.send(data)
                continue
            line = await _readline(self.client_reader)
            if not line:
                return
            await self._command(line)

    async def _command(self, line):
        tag, name = _command_name(line)
        reply = None
        if name is not None:
            self.commands += 1
            self.proxy.stats["command " + name] += 1
            if self.commands == self.proxy._bye_at:
                await self._say_bye()
            if self.proxy._drop_command(name):
                raise _Drop("command drop")
            reply = self.proxy._throttle_reply(tag, name)
        while True:
            if reply is None:
                await self.to_server.send(line)
            literal = _LITERAL.search(line)
            if not literal:
                break
            size, nonsync = int(literal[1]), literal[2] == b"+"
            if not nonsync and (reply is not None or not await self._wait("literal", tag)):
                break  # the client will not send this literal
            await self._client_literal(size, name, discard=reply is not None)
            line = await _readline(self.client_reader)
            if not line:
                raise _Drop("client eof inside command")
        if reply is not None:
            await self._inject(reply)
        elif name == "STARTTLS":
            await self._wait("starttls", tag)

    async def _say_bye(self):
        await self._inject(BYE)
        self.proxy._event("bye", self.number, self.commands)
        raise _Drop("bye")

    async def _bye_timer(self, after):
        await asyncio.sleep(after)
        if self.raw:  # after STARTTLS there is no IMAP to speak: stay quiet
            await asyncio.Event().wait()
        await self._say_bye()

    async def _wait(self, kind, tag):
        """Wait for the server's answer to `tag`: a "+" (True) for a literal;
        a tagged reply ends the command (True only for an OK to STARTTLS)."""
        future = asyncio.get_running_loop().create_future()
        self.pending = (tag, kind, future)
        return await future

    async def _client_literal(self, size, name, discard):
        cut = None if discard else self.proxy._literal_cut(name, size, "c2s")
        sent = 0
        while sent < size:
            try:
                data = await self.client_reader.readexactly(min(CHUNK, size - sent))
            except asyncio.IncompleteReadError as eof:
                raise _Drop("client eof inside literal") from eof
            if not discard:
                await self._forward_literal(self.to_server, data, sent, cut)
            sent += len(data)

    async def _forward_literal(self, pipe, data, sent, cut):
        if cut is not None and sent + len(data) >= cut:
            await pipe.send(data[:cut - sent])
            raise _Drop("literal cut")
        await pipe.send(data)

    async def _inject(self, data):
        async with self.s2c_lock:
            await self.to_client.send(data)

    # -- server to client ----------------------------------------------------
    async def _s2c(self):
        while True:
            if self.raw:
                data = await self.up_reader.read(CHUNK)
                if not data:
                    return
                await self.to_client.send(data)
                continue
            line = await _readline(self.up_reader)
            if not line:
                return
            async with self.s2c_lock:
                await self._response(line)

    async def _response(self, line):
        first = line
        fetch = bool(_FETCH.match(first))
        while True:
            await self.to_client.send(line)
            literal = _LITERAL.search(line)
            if not literal:
                break
            await self._server_literal(int(literal[1]), fetch)
            line = await _readline(self.up_reader)
            if not line:
                raise _Drop("server eof inside response")
        self._resolve_pending(first)

    async def _server_literal(self, size, fetch):
        cut = self.proxy._literal_cut("FETCH", size, "s2c") if fetch else None
        sent = 0
        while sent < size:
            try:
                data = await self.up_reader.readexactly(min(CHUNK, size - sent))
            except asyncio.IncompleteReadError as eof:
                raise _Drop("server eof inside literal") from eof
            await self._forward_literal(self.to_client, data, sent, cut)
            sent += len(data)

    def _resolve_pending(self, first):
        if self.pending is None:
            return
        tag, kind, future = self.pending
        if first.startswith(b"+") and kind == "literal":
            result = True
        elif first.startswith(tag + b" "):
            ok = first[len(tag) + 1:].upper().startswith(b"OK")
            result = kind == "starttls" and ok  # a tagged reply refuses a literal
            self.raw = self.raw or result
        else:
            return
        self.pending = None
        if not future.done():
            future.set_result(result)


class FaultProxy:
    """See the module docstring. start()/stop() or use as a context manager."""

    def __init__(self, upstream_port, upstream_host=HOST, *, delay=0.0, bandwidth=None,
                 imap=True, tls_terminate=False, certs=None):
        if tls_terminate and certs is None:
            raise ValueError("tls_terminate needs certs")
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.bandwidth = bandwidth
        self.imap = imap
        self.tls_terminate = tls_terminate
        self.certs = certs
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
            await _Connection(self, self._connections, (reader, writer), upstream).run()
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
