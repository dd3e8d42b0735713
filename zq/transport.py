"""Sockets at the edge: factories with zq's options, send/recv through the codec, and
what a socket's monitor says about its connections (a peer refused at the handshake).

zmq errors are translated here, so the loops above see zq errors only.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator, NamedTuple, cast

import zmq

from zq import security
from zq.core import codec
from zq.core.messages import Message, Role
from zq.errors import ConnectionLost, PeerCongested, PeerGone, ProtocolError, TransportError
from zq.security import MasterKeys, PeerKeys

# What the master's doorkeeper (zq.gate) hears of its ROUTER's connections.
MASTER_EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_ACCEPT_FAILED
                 | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
# What a worker or client hears of its DEALER's link: dropped, refused at the handshake,
# or not made (CONNECT_RETRIED: the connection attempt failed, libzmq tries again later).
PEER_EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
               | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
               | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_CONNECT_RETRIED)


SEND_HWM = 1_000  # the master's messages queued per peer inside ZeroMQ


def master_socket(ctx: zmq.Context, bind: str, max_message: int,
                  keys: MasterKeys | None = None) -> tuple[zmq.Socket, zmq.Socket]:
    """The master's ROUTER, and a PAIR socket that reports its connections
    (MASTER_EVENTS; monitored before bind, so none is missed). Unroutable sends raise
    instead of vanishing silently. Every connection asks the ZAP handler (zq.gate), which
    must be bound already; with keys the ROUTER is a CURVE server (zq.security)."""
    sock = ctx.socket(zmq.ROUTER)
    if keys is not None:
        security.configure_master_socket(sock, keys)
    # With a ZAP domain libzmq asks the handler about NULL connections too (RFC 27).
    sock.setsockopt_string(zmq.ZAP_DOMAIN, security.ZAP_DOMAIN)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting peer takes over its identity
    sock.setsockopt(zmq.LINGER, 0)
    # max_message is the largest frame: ZeroMQ drops the connection of a peer that
    # sends a larger one, before it is buffered (docs/PROTOCOL.md §1).
    sock.setsockopt(zmq.MAXMSGSIZE, max_message)
    # Messages queued per peer in ZeroMQ: beyond, the master holds them itself, counted
    # in bytes (MasterConfig.max_held). A peer that reads is never near either.
    sock.setsockopt(zmq.SNDHWM, SEND_HWM)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.HANDSHAKE_IVL, 10_000)
    monitor = _monitor(ctx, sock, MASTER_EVENTS)
    try:
        sock.bind(bind)
    except zmq.ZMQError as e:
        sock.disable_monitor()
        monitor.close(0)
        sock.close()
        raise ConnectionLost(f"cannot bind {bind}: {e}. Is another master running there?") from e
    return sock, monitor


def _monitor(ctx: zmq.Context, sock: zmq.Socket, events: int) -> zmq.Socket:
    """A PAIR socket receiving sock's monitor events. Its queue is unbounded: libzmq drops
    events that do not fit, and a lost event would miscount the connections."""
    endpoint = f"inproc://zq-monitor-{id(sock):x}"
    sock.monitor(endpoint, events)
    pair = ctx.socket(zmq.PAIR)
    pair.setsockopt(zmq.LINGER, 0)
    pair.setsockopt(zmq.RCVHWM, 0)
    pair.connect(endpoint)
    return pair


def read_event(monitor: zmq.Socket) -> tuple[int, int] | None:
    """One monitor event (event, value) without waiting; None when there is none."""
    while True:
        try:
            frames = monitor.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(frames) == 2 and len(frames[0]) == 6:
            event, value = struct.unpack("=Hi", frames[0])
            return event, value


def peer_socket(ctx: zmq.Context, connect: str, identity: bytes | None = None,
                keys: PeerKeys | None = None) -> zmq.Socket:
    """A worker's or client's DEALER. A fresh one is made after every lost connection.
    With keys, a CURVE client of the master's public key (zq.security)."""
    return _peer_socket(ctx, connect, identity, keys, None)[0]


def watched_peer_socket(ctx: zmq.Context, connect: str,
                        keys: PeerKeys | None = None) -> tuple[zmq.Socket, zmq.Socket]:
    """peer_socket, and a PAIR socket with its PEER_EVENTS (read them with LinkWatch),
    monitored from before it connects so no refusal goes unseen."""
    sock, monitor = _peer_socket(ctx, connect, None, keys, PEER_EVENTS)
    assert monitor is not None
    return sock, monitor


def _peer_socket(ctx: zmq.Context, connect: str, identity: bytes | None,
                 keys: PeerKeys | None, events: int | None
                 ) -> tuple[zmq.Socket, zmq.Socket | None]:
    sock = ctx.socket(zmq.DEALER)
    if keys is not None:
        security.configure_peer_socket(sock, keys)
    if identity:
        sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5_000)
    monitor = _monitor(ctx, sock, events) if events else None
    try:
        sock.connect(connect)
    except zmq.ZMQError as e:
        if monitor is not None:
            unwatch(sock, monitor)
        sock.close()
        raise ConnectionLost(f"cannot connect to {connect}: {e}") from e
    return sock, monitor


def hang_up(fd: int) -> None:
    """Close one connection of a ROUTER from outside libzmq, which has no call for it:
    shut down its TCP socket (the fd libzmq gave as the message's SRCFD), through a
    duplicate, so libzmq sees the peer gone and cleans up itself. The peer reconnects
    and goes through the ZAP handler again."""
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


def unwatch(sock: zmq.Socket, monitor: zmq.Socket) -> None:
    """Before closing a watched socket: stop its monitor and close the PAIR."""
    sock.disable_monitor()
    monitor.close(0)


def send(sock: zmq.Socket, role: Role, msg: Message, peer: bytes | None = None) -> None:
    """Encode and send one message; to `peer` when sock is a ROUTER (see send_frames)."""
    send_frames(sock, codec.encode(role, msg), peer)


_MORE = int(zmq.SNDMORE | zmq.DONTWAIT)
_NOWAIT = int(zmq.DONTWAIT)
_RCVMORE = int(zmq.RCVMORE)


def send_frames(sock: zmq.Socket, frames: list[Any], peer: bytes | None = None) -> None:
    """Send encoded frames without waiting; to `peer` when sock is a ROUTER. Raises
    PeerCongested when the peer's queue is full (nothing sent: hold it, try later),
    PeerGone when a ROUTER's peer is no longer connected, TransportError otherwise."""
    # One send per frame with the flags as plain ints: pyzmq's send_multipart checks
    # each frame's type and ORs enum flags in Python per frame, ~3.5 µs a message, which
    # a master sending a HEARTBEAT to each of 1,000 workers a second pays 1,000 times.
    # A message is queued whole or not at all (libzmq decides at its first frame).
    send, last = sock.send, len(frames) - 1
    copy = len(frames) + (peer is not None) <= 3  # large payload frames go without a copy
    try:
        if peer is not None:
            send(peer, _MORE)
        for i, frame in enumerate(frames):
            send(frame, _MORE if i < last else _NOWAIT, copy=copy)
    except zmq.Again as e:
        raise PeerCongested("the peer's queue is full") from e
    except zmq.ZMQError as e:
        if e.errno == zmq.EHOSTUNREACH:
            raise PeerGone("the peer is no longer connected") from e
        raise TransportError(f"sending failed: {e}") from e


class Received(NamedTuple):
    """One message off a socket, decoded, or the reason it could not be (error)."""

    role: Role | None  # the role its signature claims; None: not a zq peer
    message: Message | None  # None when it did not decode
    error: ProtocolError | None = None
    peer: bytes = b""  # from a ROUTER: the sender's routing id
    key: str | None = None  # with keys: the public key the sender was admitted with
    frame: Any = None  # with keys: its last zmq.Frame (whose SRCFD names the connection)


def drain(sock: zmq.Socket, limit: int, *, router: bool = False, keys: bool = False,
          expect: Role | None = None) -> Iterator[Received]:
    """Receive what is ready, at most `limit` messages, and decode each; a malformed one
    (or, with `expect`, one from another role) comes with its ProtocolError. Lazy: what
    the caller does not take (a deadline passed, the socket was closed) stays queued.
    router: the first frame is the sender's routing id. keys: also the sender's key."""
    recv, decode, signatures = sock.recv_multipart, codec.decode, codec.ROLE_OF_SIGNATURE
    peer, key, frame = b"", None, None
    frames: list[Any]
    for _ in range(limit):
        try:
            if keys:
                parts = recv(zmq.NOBLOCK, copy=False)
                frame = parts[-1]
                key = cast("str | None", frame.get("User-Id"))  # a z85 key with CURVE
                head = 3 if router else 2
                frames = [p.bytes if i < head else p.buffer for i, p in enumerate(parts)]
            else:
                frames = _recv(sock, 3 if router else 2)
        except zmq.Again:
            return
        except zmq.ZMQError as e:
            raise TransportError(f"receiving failed: {e}") from e
        if router:
            peer, frames = frames[0], frames[1:]
        try:
            role, msg = decode(frames)
            if expect is not None and role is not expect:
                raise ProtocolError(f"a {role.name.lower()} message where only "
                                    f"{expect.name.lower()} messages are expected")
        except ProtocolError as e:
            claimed = signatures.get(bytes(frames[0])) if frames else None
            yield Received(claimed, None, e, peer, key, frame)
            continue
        yield Received(role, msg, None, peer, key, frame)


def _recv(sock: zmq.Socket, head: int) -> list[Any]:
    """One message's frames: the first `head` (routing id, signature, header) as bytes,
    the payload frames after them as writable buffers over ZeroMQ's own memory, not
    copied (a numpy array is rebuilt over one; codec.decode copies a plain payload's)."""
    recv, more, nowait = sock.recv, sock.getsockopt, _NOWAIT  # ints: no enum arithmetic
    frames: list[Any] = [recv(nowait)]
    while more(_RCVMORE):
        if len(frames) < head:
            frames.append(recv(nowait))
        else:
            frames.append(recv(nowait, copy=False).buffer)
    return frames


# --- what a peer's socket monitor says ---------------------------------------------------

class LogThrottle:
    """At most `burst` log lines per key every `every` seconds; the next line logged
    says how many were left out. Remembers at most `max_keys` keys (then starts afresh),
    so a flood of distinct keys (addresses) cannot grow it."""

    def __init__(self, every: float = 10.0, max_keys: int = 1024, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.max_keys, self.burst, self._clock = every, max_keys, burst, clock
        # key -> (its period began, lines logged in it, lines left out since the last)
        self._last: dict[Hashable, tuple[float, int, int]] = {}

    def allow(self, key: Hashable) -> int | None:
        """None: stay quiet this time. Else log now, saying that this many were left out."""
        now = self._clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.every:
            began, logged, left_out = seen
            if logged >= self.burst:
                self._last[key] = (began, logged, left_out + 1)
                return None
            self._last[key] = (began, logged + 1, 0)
            return left_out
        if seen is None and len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = (now, 1, 0)
        return seen[2] if seen is not None else 0


@dataclass(frozen=True)
class Refusal:
    """The master turned this peer away at the handshake. final: it will go on doing so
    until someone changes a setting (the message says which); else it was busy."""

    final: bool
    message: str


class LinkWatch:
    """Reads a watched_peer_socket's monitor: was the link dropped, or refused?
    The master says nothing else to a peer it does not admit: libzmq reports the ZAP
    status of the refusal in the handshake (400: refused; 500: the master cannot take it
    now, zq.gate), and the refused socket never reconnects by itself. One LinkWatch follows a peer's
    successive sockets (it counts failed handshakes across them).

    A peer with several masters (`endpoint` a list, a,b) also takes a connection that
    could not be made (refused: no master listens there any more) for a dropped link, so
    it goes to the next master at once; with one master, libzmq's own retries go on."""

    FAILED_IN_A_ROW = 3  # failed handshakes, no success between, that mean a refusal

    def __init__(self, who: str, endpoint: str, keys: PeerKeys | None) -> None:
        self.who, self.endpoint, self.keys = who, endpoint, keys
        self.go_round = "," in endpoint  # several masters (zq.masters.parse_connect)
        self.unreachable = False  # the last drop was a connection not made (go_round)
        self._failures = 0  # handshakes failed in a row, no success between

    @property
    def failing(self) -> bool:
        """The last handshake failed (no success since)."""
        return self._failures > 0

    def read(self, monitor: zmq.Socket) -> tuple[bool, Refusal | None]:
        """Drain the monitor: (the link dropped, the master's last refusal if any)."""
        dropped, refusal, closed = False, None, False
        self.unreachable = False
        for _ in range(1000):
            got = read_event(monitor)
            if got is None:
                break
            was_dropped, was_refused = self.note(*got)
            dropped = dropped or was_dropped
            refusal = was_refused or refusal
            closed = closed or got[0] == zmq.EVENT_DISCONNECTED
        self.unreachable = self.unreachable and not closed  # libzmq retries after a drop too
        return dropped, refusal

    def note(self, event: int, value: int) -> tuple[bool, Refusal | None]:
        """One monitor event: (the link dropped, the master's refusal if it was one)."""
        if event == zmq.EVENT_DISCONNECTED:
            return True, None
        if event == zmq.EVENT_CONNECT_RETRIED:
            self.unreachable = self.unreachable or self.go_round
            return self.go_round, None
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._failures = 0
            return False, None
        return False, self._refusal(event, value)

    def _refusal(self, event: int, value: int) -> Refusal | None:
        where = f"the zq master at {self.endpoint}"
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            if value != 400:  # 500 (300 never arrives: libzmq stalls on it)
                return Refusal(False, f"{where} is at its connection limit and turned "
                                      f"this {self.who} away for now; retrying")
            if self.keys is None:
                return Refusal(True, f"{where} refused this {self.who}: without keys it "
                                     "admits only peers on its own host (loopback). Use "
                                     "keys on both sides (zq keys init DIR, then --keys "
                                     "DIR), or start the master with --insecure on a "
                                     "trusted network")
            return Refusal(True, f"{where} refused this {self.who}'s key "
                                 f"{self.keys.public.decode('ascii')}: it is not in the "
                                 f"master's keys; add its public NAME.key to the master's "
                                 f"{self.who}s/ folder (zq keys add {self.who} NAME)")
        if (event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH):
            return Refusal(True, self._mismatch())
        # Often a mismatch shows only as a connection closed in the handshake (the master
        # saw it first and hung up): a few in a row, with no success between, say as much.
        self._failures += 1
        if self._failures < self.FAILED_IN_A_ROW:
            return None
        failed = f"the handshake with {where} failed {self._failures} times in a row"
        if self.keys is None:
            return Refusal(True, f"{failed}: {self._mismatch()}")
        return Refusal(True, f"{failed}: the master key this {self.who} was given is "
                             "probably not that master's public key; else the master does "
                             f"not use keys, or does not admit this {self.who}'s key "
                             f"{self.keys.public.decode('ascii')}")

    def _mismatch(self) -> str:
        where = f"the zq master at {self.endpoint}"
        if self.keys is None:
            return (f"{where} requires keys: give this {self.who} keys (its secret key and "
                    "the master's public key)")
        return (f"{where} does not use keys, but this {self.who} does: use keys on both "
                "sides or on neither")
