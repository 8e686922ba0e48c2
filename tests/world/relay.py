"""One FaultProxy connection: relays bytes, or parses IMAP both ways to apply the proxy's
faults at protocol boundaries, and hands protocol units to a Rewrite when one is given."""
import asyncio
import re

from .pipe import CHUNK, Drop, Pipe

BYE = b"* BYE Session invalidated - AccessTokenExpired\r\n"
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
_FETCH = re.compile(rb"^\* \d+ FETCH ", re.I)


class Cut(Drop):
    """Raised by a Rewrite: cut the connection here; what was forwarded before still
    arrives, this unit and everything after it does not."""


class Rewrite:
    """Rewrites one connection's traffic; override either side. The proxy makes one
    instance per connection, so per-session state (a command seen) lives on `self`."""

    def client(self, unit: bytes) -> bytes:
        """What to send the server instead of `unit` from the client."""
        return unit

    def server(self, unit: bytes) -> bytes:
        """What to send the client instead of `unit` from the server."""
        return unit

    def client_literal(self, command: str, data: bytes) -> bytes:
        """What to send the server instead of one whole literal the client sends within
        `command` ("APPEND", "UID FETCH"...); the proxy writes the new size into the command
        line, `{n}` and `{n+}` alike. Overriding it makes the proxy hold each client literal
        until it is complete (a synchronizing one gets the proxy's own "+", which may come
        before the replies to commands sent earlier), so a server never sees a size that
        does not match what follows."""
        return data


def _holds_literals(rewriter):
    """Does this Rewrite change client literals (see Rewrite.client_literal)?"""
    return rewriter is not None and type(rewriter).client_literal is not Rewrite.client_literal


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


async def _read_unit(reader, rewriting):
    """The next chunk of raw traffic: a line when it is rewritten (the unterminated rest at
    the end of the stream included), otherwise whatever has arrived."""
    if not rewriting:
        return await reader.read(CHUNK)
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as eof:
        return eof.partial


class Connection:
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
        self.login_tag = None  # the tag of the client's LOGIN or AUTHENTICATE
        self.logged_in = asyncio.Event()  # the server said OK to it
        self.s2c_lock = asyncio.Lock()
        self.commands = 0
        self.rewriter = proxy.rewrite() if proxy.rewrite else None

    def _pipe(self, writer, direction):
        budget = self.proxy._byte_budget(self.number, direction)

        def on_cut():
            self.proxy._event("byte_drop", direction, self.number, budget)

        return Pipe(writer, self.proxy.delay, self.proxy.bandwidth, budget, on_cut)

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

    def _rewritten(self, direction, unit):
        """`unit` through the Rewrite (unchanged without one); every change and cut is an
        event ("rewrite"/"cut", direction, connection)."""
        if self.rewriter is None:
            return unit
        method = self.rewriter.client if direction == "c2s" else self.rewriter.server
        try:
            result = method(unit)
        except Cut:
            self.proxy._event("cut", direction, self.number)
            raise
        if result != unit:
            self.proxy._event("rewrite", direction, self.number)
        return result

    # -- client to server ----------------------------------------------------
    async def _c2s(self):
        while True:
            if self.raw:
                data = await _read_unit(self.client_reader, self.rewriter is not None)
                if not data:
                    return
                await self.to_server.send(self._rewritten("c2s", data))
                continue
            line = await self._client_line()
            if line:
                await self._command(line)
            elif self.client_reader.at_eof():
                return

    async def _client_line(self):
        """The client's next line outside literals, rewritten (b"" at the end, or when
        the rewrite swallowed it)."""
        line = await _readline(self.client_reader)
        return self._rewritten("c2s", line) if line else line

    async def _command(self, line):
        """Forward one command, its literals and continuation lines, applying the faults;
        a command the server refuses part-way is swallowed to its end."""
        tag, name = _command_name(line)
        reply = None
        if name is not None:
            self.commands += 1
            self.proxy.stats["command " + name] += 1
            if name in ("LOGIN", "AUTHENTICATE"):
                self.login_tag = tag
            if self.commands == self.proxy._bye_at:
                await self._say_bye()
            if self.proxy._drop_command(name):
                raise Drop("command drop")
            reply = self.proxy._throttle_reply(tag, name)
        forward = reply is None
        while True:
            literal = _LITERAL.search(line)
            if forward and literal and _holds_literals(self.rewriter):
                forward = await self._held_literal(line, literal, tag, name)
            else:
                if forward:
                    await self.to_server.send(line)
                if not literal:
                    break
                size, nonsync = int(literal[1]), literal[2] == b"+"
                if not nonsync and (not forward or not await self._wait("literal", tag)):
                    break  # the client will not send this literal
                await self._client_literal(size, name, discard=not forward)
            line = await self._client_line()
            if not line:
                raise Drop("client eof inside command")
        if reply is not None:
            await self._inject(reply)
        elif name == "STARTTLS":
            await self._wait("starttls", tag)

    async def _say_bye(self):
        await self._inject(BYE)
        self.proxy._event("bye", self.number, self.commands)
        raise Drop("bye")

    async def _bye_timer(self, after):
        """The goodbye once the connection is `after` seconds old and logged in; one not
        logged in by then (on a loaded machine an XOAUTH2 login here can take longer than a
        short test session) gets `after` seconds from its login instead: Exchange never ends
        a session before its login is done (its tokens live an hour)."""
        await asyncio.sleep(after)
        if not self.logged_in.is_set():
            await self.logged_in.wait()
            await asyncio.sleep(after)
        if self.raw:  # after STARTTLS there is no IMAP to speak: stay quiet
            await asyncio.Event().wait()
        await self._say_bye()

    async def _wait(self, kind, tag):
        """Wait for the server's answer to `tag`: a "+" (True) for a literal ("literal", or
        "held" when the client already had the proxy's "+"); a tagged reply ends the
        command (True only for an OK to STARTTLS)."""
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
                raise Drop("client eof inside literal") from eof
            if not discard:
                await self._forward_literal(self.to_server, data, sent, cut)
            sent += len(data)

    async def _held_literal(self, line, literal, tag, name):
        """Read a client literal whole, rewrite it, then send the server the command line
        with the new size and the new literal. A synchronizing literal gets the proxy's "+"
        (the server's own is swallowed). False when the server refuses the literal: its
        tagged reply reaches the client, and the rest of the command is not forwarded."""
        size, nonsync = int(literal[1]), literal[2] == b"+"
        if not nonsync:
            await self._inject(b"+ held by the proxy\r\n")
        try:
            data = await self.client_reader.readexactly(size)
        except asyncio.IncompleteReadError as eof:
            raise Drop("client eof inside literal") from eof
        data = self._rewritten_literal(name, data)
        await self.to_server.send(line[:literal.start(1)] + b"%d" % len(data)
                                  + line[literal.end(1):])
        if not nonsync and not await self._wait("held", tag):
            return False
        await self._forward_literal(self.to_server, data, 0,
                                    self.proxy._literal_cut(name, len(data), "c2s"))
        return True

    def _rewritten_literal(self, name, data):
        """`data` through Rewrite.client_literal; changes and cuts are events as for lines."""
        try:
            result = self.rewriter.client_literal(name, data)
        except Cut:
            self.proxy._event("cut", "c2s", self.number)
            raise
        if result != data:
            self.proxy._event("rewrite", "c2s", self.number)
        return result

    async def _forward_literal(self, pipe, data, sent, cut):
        if cut is not None and sent + len(data) >= cut:
            await pipe.send(data[:cut - sent])
            raise Drop("literal cut")
        await pipe.send(data)

    async def _inject(self, data):
        async with self.s2c_lock:
            await self.to_client.send(data)

    # -- server to client ----------------------------------------------------
    async def _s2c(self):
        while True:
            if self.raw:
                data = await _read_unit(self.up_reader, self.rewriter is not None)
                if not data:
                    return
                await self.to_client.send(self._rewritten("s2c", data))
                continue
            line = await _readline(self.up_reader)
            if not line:
                return
            async with self.s2c_lock:
                if self.rewriter is None:
                    await self._response(line)
                else:
                    await self._rewritten_response(line)

    async def _rewritten_response(self, first):
        """Read the whole response (its literals too), rewrite it, send what comes out."""
        parts, line = [first], first
        while literal := _LITERAL.search(line):
            try:
                parts.append(await self.up_reader.readexactly(int(literal[1])))
            except asyncio.IncompleteReadError as eof:
                raise Drop("server eof inside literal") from eof
            line = await _readline(self.up_reader)
            if not line:
                raise Drop("server eof inside response")
            parts.append(line)
        if not self._swallowed_continuation(first):
            await self.to_client.send(self._rewritten("s2c", b"".join(parts)))
        self._resolve_pending(first)  # the proxy follows the server, not the rewrite

    def _swallowed_continuation(self, first):
        """The server's "+" for a literal the proxy already said "+" to (a held literal)."""
        return (first.startswith(b"+") and self.pending is not None
                and self.pending[1] == "held")

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
                raise Drop("server eof inside response")
        self._resolve_pending(first)

    async def _server_literal(self, size, fetch):
        cut = self.proxy._literal_cut("FETCH", size, "s2c") if fetch else None
        sent = 0
        while sent < size:
            try:
                data = await self.up_reader.readexactly(min(CHUNK, size - sent))
            except asyncio.IncompleteReadError as eof:
                raise Drop("server eof inside literal") from eof
            await self._forward_literal(self.to_client, data, sent, cut)
            sent += len(data)

    def _resolve_pending(self, first):
        if self.login_tag is not None and first.upper().startswith(self.login_tag.upper()
                                                                    + b" OK"):
            self.logged_in.set()
        if self.pending is None:
            return
        tag, kind, future = self.pending
        if first.startswith(b"+") and kind in ("literal", "held"):
            result = True
        elif first.startswith(tag + b" "):
            ok = first[len(tag) + 1:].upper().startswith(b"OK")
            result = kind == "starttls" and ok  # a tagged reply refuses a literal
            self.raw = self.raw or result
            if result:
                self.rewriter = None  # TLS from here on: nothing readable to rewrite
        else:
            return
        self.pending = None
        if not future.done():
            future.set_result(result)
