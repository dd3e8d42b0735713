"""A peer that speaks the zq protocol directly over a raw DEALER: for tests that play a
worker or a client which misbehaves (forges, hoards, floods, never reads)."""

from __future__ import annotations

import time
from typing import Any, Callable

import zmq

from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role


class RawPeer:
    def __init__(self, endpoint: str, role: Role, rcvhwm: int | None = None) -> None:
        self.role = role
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.connect(endpoint)

    def send(self, msg: m.Message) -> None:
        self.sock.send_multipart(codec.encode(self.role, msg))

    def send_raw(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 5.0) -> m.Message | None:
        if not self.sock.poll(timeout * 1000):
            return None
        return codec.decode(self.sock.recv_multipart())[1]

    def recv_until(self, want: Callable[[m.Message], bool], timeout: float = 10.0,
                   seen: list[m.Message] | None = None) -> m.Message:
        """Read until a message `want` accepts (others go to `seen`); bounded in time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no wanted message within {timeout}s; saw {seen}")
            msg = self.recv(left)
            if msg is not None and want(msg):
                return msg
            if msg is not None and seen is not None:
                seen.append(msg)

    def hello(self, name: str, credit: int, concurrency: int = 1,
              running: list[str] | None = None) -> m.Welcome:
        self.send(m.Hello(name, "raw-host", 4242, ["default"], concurrency, "thread", credit,
                          running or []))
        welcome = self.recv_until(lambda x: isinstance(x, m.Welcome))
        assert isinstance(welcome, m.Welcome)
        return welcome

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
