"""LinkWatch (zq.transport): a connection that could not be made (libzmq's
CONNECT_RETRIED: refused, nothing listens there) counts as a dropped link for a peer
with several masters, which then goes to the next at once; with one master libzmq's own
retries go on, as before (issue 16)."""

from __future__ import annotations

import struct

import zmq

from zq.transport import PEER_EVENTS, LinkWatch


def test_a_connection_not_made_is_a_drop_with_several_masters_only() -> None:
    several = LinkWatch("worker", "tcp://a:5555,tcp://b:5555", None)
    assert several.note(zmq.EVENT_CONNECT_RETRIED, 100) == (True, None)
    one = LinkWatch("worker", "tcp://a:5555", None)
    assert one.note(zmq.EVENT_CONNECT_RETRIED, 100) == (False, None)
    assert not one.failing and not several.failing  # not a refused handshake


def test_the_peer_socket_reports_it() -> None:
    assert PEER_EVENTS & zmq.EVENT_CONNECT_RETRIED


class FakeMonitor:
    """What a monitor socket gives read_event: (event, value) frames, then zmq.Again."""

    def __init__(self, *events: int) -> None:
        self.frames = [[struct.pack("=Hi", e, 0), b"tcp://a:5555"] for e in events]

    def recv_multipart(self, flags: int = 0) -> list[bytes]:
        if not self.frames:
            raise zmq.Again()
        return self.frames.pop(0)


def test_a_refused_connection_is_told_apart_from_a_closed_one() -> None:
    """libzmq retries after a dropped connection too: a drop then a retry is a closed
    connection, a retry alone one that could not be made."""
    watch = LinkWatch("client", "tcp://a:5555,tcp://b:5555", None)
    assert watch.read(FakeMonitor(zmq.EVENT_CONNECT_RETRIED)) == (True, None)  # type: ignore[arg-type]
    assert watch.unreachable
    closed = FakeMonitor(zmq.EVENT_DISCONNECTED, zmq.EVENT_CONNECT_RETRIED)
    assert watch.read(closed) == (True, None)  # type: ignore[arg-type]
    assert not watch.unreachable
