"""One direction of a FaultProxy connection: a delay line with optional pacing and a byte
budget, so latency and bandwidth faults keep throughput and order intact."""
import asyncio
import contextlib
import ssl

CHUNK = 64 * 1024
PIPE_BYTES = 16 * 1024 * 1024  # queued per direction before the reader waits


class Drop(Exception):
    """Tear the connection down now (after flushing what was already sent)."""


class Pipe:
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
        """Queue data; raise Drop once the byte budget is used up."""
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
            raise Drop("byte budget")

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
