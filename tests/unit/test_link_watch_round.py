"""LinkWatch (zq.transport): a connection that could not be made (libzmq's
CONNECT_RETRIED: refused, nothing listens there) counts as a dropped link for a peer
with several masters, which then goes to the next at once; with one master libzmq's own
retries go on, as before (issue 16)."""

from __future__ import annotations

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
