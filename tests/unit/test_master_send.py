"""The master's sending: a peer that does not read (its queue is full) has its messages
held in order, and nobody else waits for it. A stub socket stands in for the ROUTER."""

from __future__ import annotations

import errno
from typing import Any

import zmq

from zq.config import MasterConfig
from zq.core import codec
from zq.core import messages as m
from zq.master import Master


class StubRouter:
    """Records what was sent per peer; a peer in `full` refuses (EAGAIN), a peer in
    `gone` is unroutable (EHOSTUNREACH)."""

    def __init__(self) -> None:
        self.sent: dict[bytes, list[m.Message]] = {}
        self.full: set[bytes] = set()
        self.gone: set[bytes] = set()
        self.frames: list[Any] = []  # the message being sent, frame by frame

    def send(self, frame: Any, flags: int = 0, copy: bool = True) -> None:
        """As a ROUTER: the first frame names the peer, and a message is refused (or
        goes) whole, at its first frame; the last frame is the one without SNDMORE."""
        if not self.frames:
            if frame in self.full:
                raise zmq.Again()
            if frame in self.gone:
                raise zmq.ZMQError(errno.EHOSTUNREACH)
        self.frames.append(frame)
        if not flags & zmq.SNDMORE:
            rid, *rest = self.frames
            self.frames = []
            self.sent.setdefault(rid, []).append(codec.decode([bytes(f) for f in rest])[1])


def reply(n: int) -> m.Message:
    return m.Reply(n, True, None)  # any message with a number to see the order by


def numbers(msgs: list[m.Message]) -> list[int]:
    return [msg.request_id for msg in msgs]  # type: ignore[attr-defined]


def test_a_full_peer_is_held_in_order_and_the_others_are_served() -> None:
    master = Master(MasterConfig(store="memory"))
    router = master.sock = StubRouter()  # type: ignore[assignment]
    try:
        router.full.add(b"slow")
        master._send([(b"slow", reply(1)), (b"fast", reply(2)),
                      (b"slow", reply(3)), (b"gone", reply(4)),
                      (b"fast", reply(5))])
        router.gone.add(b"gone")
        master._send([(b"gone", reply(6)), (b"slow", reply(7))])
        assert numbers(router.sent[b"fast"]) == [2, 5]
        assert numbers(router.sent[b"gone"]) == [4]  # 6 went nowhere: the peer left
        assert b"slow" not in router.sent
        router.full.discard(b"slow")
        master._send([(b"slow", reply(8)), (b"fast", reply(9))])
        assert numbers(router.sent[b"slow"]) == [1, 3, 7, 8]  # in order, none lost
        assert numbers(router.sent[b"fast"]) == [2, 5, 9]
        assert not master._held
    finally:
        master.store.close()
        master.ctx.term()
