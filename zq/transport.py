"""Sockets at the edge: factories with zq's options, and send/recv through the codec.

zmq errors are translated here, so the loops above see zq errors only.
"""

from __future__ import annotations

from typing import Any

import zmq

from zq import security
from zq.core import codec
from zq.core.messages import Message, Role
from zq.errors import ConnectionLost
from zq.security import MasterKeys, PeerKeys


def master_socket(ctx: zmq.Context, bind: str, max_message: int,
                  keys: MasterKeys | None = None) -> zmq.Socket:
    """The master's ROUTER: unroutable sends raise instead of vanishing silently. With
    keys, a CURVE server (zq.security)."""
    sock = ctx.socket(zmq.ROUTER)
    if keys is not None:
        security.configure_master_socket(sock, keys)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting peer takes over its identity
    sock.setsockopt(zmq.LINGER, 0)
    # A hard cap per frame, above the limit the master checks itself: a frame past it
    # drops the connection before it is even buffered; one under it gets a clear ERROR.
    sock.setsockopt(zmq.MAXMSGSIZE, 2 * max_message)
    sock.setsockopt(zmq.SNDHWM, 100_000)  # credit bounds what we queue, not the HWM
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.HANDSHAKE_IVL, 10_000)
    try:
        sock.bind(bind)
    except zmq.ZMQError as e:
        sock.close()
        raise ConnectionLost(f"cannot bind {bind}: {e}. Is another master running there?") from e
    return sock


def peer_socket(ctx: zmq.Context, connect: str, identity: bytes | None = None,
                keys: PeerKeys | None = None) -> zmq.Socket:
    """A worker's or client's DEALER. A fresh one is made after every lost connection.
    With keys, a CURVE client of the master's public key (zq.security)."""
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
    try:
        sock.connect(connect)
    except zmq.ZMQError as e:
        sock.close()
        raise ConnectionLost(f"cannot connect to {connect}: {e}") from e
    return sock


def send(sock: zmq.Socket, role: Role, msg: Message, peer: bytes | None = None) -> None:
    """Encode and send one message; to `peer` when sock is a ROUTER. Raises zmq.Again
    when the peer is congested and zmq.ZMQError(EHOSTUNREACH) when it is gone."""
    frames: list[Any] = codec.encode(role, msg)
    if peer is not None:
        frames.insert(0, peer)
    # Large payload frames go without a copy; pyzmq copies small frames anyway.
    sock.send_multipart(frames, flags=zmq.DONTWAIT, copy=len(frames) <= 3)
