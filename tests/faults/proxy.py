"""A userspace TCP proxy for fault tests (this kernel has no netem): peers connect to it
instead of the master, and it makes the link slow, jittery, lossy, stalled or cut.

    with Proxy(("127.0.0.1", master_port)) as p:      # peers connect to p.endpoint
        p.up.delay, p.up.jitter, p.up.loss = 0.2, 0.05, 0.05   # peer -> master
        p.down.rate = 100_000                                   # master -> peer, bytes/s
        p.stall(True); ...; p.stall(False)                      # a short partition
        p.cut()                                                 # reset every connection

Loss is what TCP makes of it: a lost segment is sent again one retransmission timeout
later (doubling while it is lost again), so bytes arrive late and in order, and
everything behind them waits; they never vanish from a live connection. Bytes vanish
only when a connection is cut, as in real networks.

The proxy also reads ZMTP 3 framing (NULL mechanism, what zq uses without keys), so it
knows where each zq message starts and ends: `filter` may drop or duplicate whole
messages (a lost ACK, a replayed SUBMIT), `inject` adds one, and `stats` says how many
messages went each way and whether one is half forwarded. With no filter, bytes go on
as they come (a message can be cut in its middle); with one, whole messages do.

Everything runs on one asyncio loop in a daemon thread; the methods are thread-safe.
Only loopback and our own namespaces are ever addressed: the listen and target
addresses are the caller's.
"""

from __future__ import annotations

import asyncio
import enum
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

GREETING = 64  # bytes of a ZMTP 3 greeting
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
CHUNK = 4096  # bytes scheduled at a time: the grain of delay, loss and rate
MIN_RTO = 0.2  # Linux's minimum retransmission timeout, seconds


class Verdict(enum.Enum):
    FORWARD = "forward"
    DROP = "drop"
    DUPLICATE = "duplicate"  # forward it twice, back to back


UP, DOWN = "up", "down"  # peer -> target, target -> peer
Filter = Callable[[str, list[bytes]], Verdict]


@dataclass
class Link:
    """How one direction of every connection behaves; change it at any time."""

    delay: float = 0.0  # seconds added to every byte
    jitter: float = 0.0  # +- seconds, uniform, on top of delay (order is kept)
    loss: float = 0.0  # probability that a chunk is lost once (and resent an RTO later)
    rate: float = 0.0  # bytes per second; 0 = unlimited

    def rto(self) -> float:
        """The retransmission timeout TCP would use on this link: about a round trip
        and its variance, at least Linux's minimum."""
        return max(MIN_RTO, 2 * self.delay + 4 * self.jitter)


@dataclass
class Stats:
    messages: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})
    dropped: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})
    lost_chunks: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})
    connections: int = 0
    cut: int = 0  # connections reset by cut()
    delivered: dict[str, int] = field(default_factory=lambda: {UP: 0, DOWN: 0})


class Zmtp:
    """Splits one direction of a ZMTP 3 stream into units: greeting bytes, commands
    (handshake, PING) and whole messages (lists of frames), each with the stream
    offsets where it starts and ends."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0  # stream offset of buf[0]
        self.frames: list[bytes] = []
        self.raw = bytearray()  # bytes of the unfinished message's complete frames
        self.start = -1  # stream offset where the unfinished message began, or -1

    def feed(self, data: bytes) -> tuple[list[tuple[str, Any, bytes]], list[int], list[int]]:
        """(units completed by data, offsets where messages began, offsets just past
        where messages ended). A unit is ("raw", None, bytes) for greeting bytes,
        ("command", None, bytes) or ("message", frames, bytes)."""
        units: list[tuple[str, Any, bytes]] = []
        starts: list[int] = []
        ends: list[int] = []
        if self.pos < GREETING:
            take = min(GREETING - self.pos, len(data))
            units.append(("raw", None, bytes(data[:take])))
            self.pos += take
            data = data[take:]
        self.buf += data
        while len(self.buf) >= 2:
            flags = self.buf[0]
            if not flags & COMMAND and self.start < 0:
                self.start = self.pos
                starts.append(self.pos)
            frame = self._frame()
            if frame is None:
                break
            flags, body, raw = frame
            self.pos += len(raw)
            if flags & COMMAND:
                units.append(("command", None, raw))
                continue
            self.frames.append(body)
            self.raw += raw
            if not flags & MORE:
                units.append(("message", self.frames, bytes(self.raw)))
                ends.append(self.pos)
                self.frames, self.raw, self.start = [], bytearray(), -1
        return units, starts, ends

    def between_messages(self) -> bool:
        """Nothing of a message or command is held: the next byte starts a new one."""
        return not self.buf and self.start < 0

    def _frame(self) -> tuple[int, bytes, bytes] | None:
        buf = self.buf
        flags = buf[0]
        if flags & LONG:
            if len(buf) < 9:
                return None
            size, head = struct.unpack(">Q", bytes(buf[1:9]))[0], 9
        else:
            size, head = buf[1], 2
        if len(buf) < head + size:
            return None
        raw = bytes(buf[:head + size])
        del buf[:head + size]
        return flags, raw[head:], raw


def encode_message(frames: list[bytes]) -> bytes:
    """The ZMTP 3 bytes of one message (for inject)."""
    out = bytearray()
    for i, body in enumerate(frames):
        flags = MORE if i < len(frames) - 1 else 0
        if len(body) > 255:
            out += bytes([flags | LONG]) + struct.pack(">Q", len(body))
        else:
            out += bytes([flags, len(body)])
        out += body
    return bytes(out)


class _Pipe:
    """One direction of one proxied connection: reads, decides, schedules, writes.
    Every piece queued says how many messages begin in it and which end in it, so the
    writer knows what the far side has wholly received, and what only in part."""

    def __init__(self, proxy: Proxy, conn: _Connection, direction: str,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy, self.conn, self.direction = proxy, conn, direction
        self.reader, self.writer = reader, writer
        self.parser = Zmtp()
        self.queue: asyncio.Queue[tuple[float, bytes, int, list[list[bytes]]] | None] = \
            asyncio.Queue()
        self.last_due = 0.0
        self.fed = 0  # stream offset of the next byte read
        self.open = 0  # messages partly written to the far side
        # Whole messages through the filter, or bytes as they come; it changes only
        # between messages, so no message is sent twice or half.
        self.filtering = proxy.filter is not None

    @property
    def link(self) -> Link:
        return self.proxy.up if self.direction == UP else self.proxy.down

    def _due(self, size: int) -> float:
        """When a piece of `size` bytes read now reaches the far side."""
        link, rng = self.link, self.proxy.rng
        due = asyncio.get_running_loop().time() + link.delay
        if link.jitter:
            due += rng.uniform(-link.jitter, link.jitter)
        rto = link.rto()
        while link.loss and rng.random() < link.loss and rto < 60:
            self.proxy.stats.lost_chunks[self.direction] += 1
            due += rto  # sent again one timeout later, which may be lost too
            rto *= 2
        due = max(due, self.last_due)  # TCP keeps the order: nothing overtakes
        if link.rate:
            due += size / link.rate
        self.last_due = due
        return due

    def _schedule(self, data: bytes, base: int, starts: list[int],
                  ends: list[tuple[int, list[bytes]]]) -> None:
        """Queue data, which is stream bytes [base, base + len); starts and ends are the
        offsets where messages begin and end (just past their last byte)."""
        for i in range(0, len(data), CHUNK):
            lo, hi = base + i, base + min(i + CHUNK, len(data))
            piece = data[i:i + CHUNK]
            begun = sum(1 for s in starts if lo <= s < hi)
            done = [frames for e, frames in ends if lo < e <= hi]
            self.queue.put_nowait((self._due(len(piece)), piece, begun, done))

    def _message(self, frames: list[bytes], raw: bytes) -> None:
        """Queue one whole message (message mode)."""
        self._schedule(raw, 0, [0], [(len(raw), frames)])

    async def read(self) -> None:
        proxy, stats = self.proxy, self.proxy.stats
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                if self.parser.between_messages():
                    self.filtering = proxy.filter is not None
                units, starts, ends = self.parser.feed(data)
                messages = [(kind, frames, raw) for kind, frames, raw in units
                            if kind == "message"]
                for _, frames, _ in messages:
                    stats.messages[self.direction] += 1
                    proxy._saw(self.direction, frames)
                base, self.fed = self.fed, self.fed + len(data)
                if not self.filtering:  # bytes as they come
                    self._schedule(data, base, starts,
                                   [(e, f) for e, (_, f, _) in zip(ends, messages)])
                    continue
                for kind, frames, raw in units:  # whole messages, as the filter says
                    if kind != "message":
                        self._schedule(raw, 0, [], [])
                        continue
                    verdict = proxy._judge(self.direction, frames)
                    if verdict is Verdict.DROP:
                        stats.dropped[self.direction] += 1
                        continue
                    for _ in range(2 if verdict is Verdict.DUPLICATE else 1):
                        self._message(frames, raw)
        except (ConnectionError, OSError):
            pass
        finally:
            # The sender went away. With abort_on_close what the link still holds is
            # lost (a peer killed mid-send, a cut); otherwise it arrives, then a FIN.
            if proxy.abort_on_close:
                self.conn.abort()
            else:
                self.queue.put_nowait(None)

    def inject(self, frames: list[bytes]) -> None:
        self._message(frames, encode_message(frames))

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        flowing = self.proxy._flowing[self.direction]
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    break
                due, piece, begun, done = item
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await flowing.wait()
                self.writer.write(piece)
                await self.writer.drain()
                self.open += begun - len(done)
                for frames in done:
                    self.proxy._delivered(self.direction, frames)
        except (ConnectionError, OSError):
            self.conn.abort()


class _Connection:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.pipes: dict[str, _Pipe] = {}
        self.closed = False

    def abort(self) -> None:
        """Reset both sides at once (RST: SO_LINGER 0), dropping what is in flight."""
        if self.closed:
            return
        self.closed = True
        for w in self.writers:
            sock = w.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            w.transport.abort()
        for t in self.tasks:
            t.cancel()
        self.proxy._conns.discard(self)


class Proxy:
    def __init__(self, target: tuple[str, int], listen: str = "127.0.0.1", port: int = 0,
                 seed: int = 0) -> None:
        """target: (host, port) of the master; listen on (listen, port), port 0: any."""
        self.target, self.listen, self.port = target, listen, port
        self.up, self.down = Link(), Link()
        self.filter: Filter | None = None
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.refusing = False  # new connections are accepted and reset at once
        self.abort_on_close = False  # a peer that closes takes its in-flight bytes along
        # Seconds a new connection waits for the target to accept (a master restarting)
        # before it is reset; 0: reset at once, as most TCP proxies do.
        self.connect_patience = 0.0
        self.capture = False  # keep every message read, and every one delivered
        self.captured: list[tuple[str, list[bytes]]] = []  # read from a sender
        self.delivered: list[tuple[str, list[bytes]]] = []  # wholly written to the far side
        self._conns: set[_Connection] = set()
        self._flowing: dict[str, asyncio.Event] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._server: asyncio.AbstractServer | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.listen}:{self.port}"

    # --- control, from any thread ------------------------------------------------------

    def start(self) -> Proxy:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stall(self, on: bool, direction: str | None = None) -> None:
        """Hold every byte (one direction, or both) until stall(False): a partition that
        TCP rides out, as long as it is shorter than its own timeouts."""
        for d in ([direction] if direction else [UP, DOWN]):
            event = self._flowing[d]
            self._loop.call_soon_threadsafe(event.clear if on else event.set)

    def cut(self) -> int:
        """Reset every connection now (the bytes in flight are lost); returns how many."""
        return self._call(self._cut())

    def inject(self, direction: str, frames: list[bytes]) -> int:
        """Send one extra message on every live connection, after what is queued;
        returns on how many. Use it in message mode (with a filter) so it lands between
        whole messages."""
        async def go() -> int:
            conns = list(self._conns)
            for c in conns:
                c.pipes[direction].inject(frames)
            return len(conns)
        return self._call(go())

    def connections(self) -> int:
        return len(self._conns)

    def mid_message(self, direction: str) -> bool:
        """True while some connection's far side has part of a message, not its end."""
        return any(c.pipes[direction].open > 0 for c in list(self._conns))

    # --- inside the loop ------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._flowing = {UP: asyncio.Event(), DOWN: asyncio.Event()}
        for e in self._flowing.values():
            e.set()
        self._server = await asyncio.start_server(self._accept, self.listen, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()

    async def _cut(self) -> int:
        conns = list(self._conns)
        for c in conns:
            c.abort()
        self.stats.cut += len(conns)
        return len(conns)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self)
        conn.writers.append(writer)
        if self.refusing:
            conn.abort()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_patience
        while True:
            try:
                t_reader, t_writer = await asyncio.open_connection(*self.target)
                break
            except OSError:
                if loop.time() >= deadline:
                    conn.abort()
                    return
                await asyncio.sleep(0.05)  # the target restarts: hold the peer meanwhile
        conn.writers.append(t_writer)
        self._conns.add(conn)
        self.stats.connections += 1
        up = conn.pipes[UP] = _Pipe(self, conn, UP, reader, t_writer)
        down = conn.pipes[DOWN] = _Pipe(self, conn, DOWN, t_reader, writer)
        conn.tasks = [asyncio.create_task(p()) for p in (up.read, up.write, down.read, down.write)]

    def _judge(self, direction: str, frames: list[bytes]) -> Verdict:
        try:
            return self.filter(direction, frames) if self.filter else Verdict.FORWARD
        except Exception:  # a broken filter must not stop the link: forward
            return Verdict.FORWARD

    def _saw(self, direction: str, frames: list[bytes]) -> None:
        if self.capture:
            self.captured.append((direction, list(frames)))

    def _delivered(self, direction: str, frames: list[bytes]) -> None:
        self.stats.delivered[direction] += 1
        if self.capture:
            self.delivered.append((direction, list(frames)))
