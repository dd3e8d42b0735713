"""zq.transport at the socket edge, on real inproc sockets: send() and drain() hand the
loops zq's errors (never zmq's), drain() decodes each message or says why it could not,
and stops at its bound, leaving the rest queued."""

from __future__ import annotations

from typing import Iterator

import pytest
import zmq

from zq import transport
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role
from zq.errors import PeerCongested, PeerGone, ProtocolError, TransportError, ZqError

RECV_TIMEOUT_MS = 5_000  # a message that never arrives fails the test instead of hanging


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def pair(ctx: zmq.Context, name: str) -> tuple[zmq.Socket, zmq.Socket]:
    """A ROUTER (the master's side) and a DEALER connected to it, identity b"d"."""
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
    router.bind(f"inproc://{name}")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"d")
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
    dealer.connect(f"inproc://{name}")
    return router, dealer


def wait_readable(sock: zmq.Socket) -> None:
    assert sock.poll(RECV_TIMEOUT_MS, zmq.POLLIN), "nothing arrived"


def test_send_to_a_peer_that_is_gone_raises_peer_gone(ctx: zmq.Context) -> None:
    router, _ = pair(ctx, "gone")
    with pytest.raises(PeerGone) as caught:
        transport.send(router, Role.MASTER, m.Heartbeat(), peer=b"nobody")
    assert isinstance(caught.value.__cause__, zmq.ZMQError)
    assert isinstance(caught.value, TransportError) and isinstance(caught.value, ZqError)


def test_send_with_no_room_raises_peer_congested(ctx: zmq.Context) -> None:
    lonely = ctx.socket(zmq.DEALER)  # connected to nothing: no queue to put a message in
    lonely.setsockopt(zmq.LINGER, 0)
    with pytest.raises(PeerCongested) as caught:
        transport.send(lonely, Role.WORKER, m.Heartbeat())
    assert isinstance(caught.value.__cause__, zmq.Again)


def test_drain_decodes_and_names_the_sender(ctx: zmq.Context) -> None:
    router, dealer = pair(ctx, "decode")
    transport.send(dealer, Role.CLIENT, m.Query(7, "status", {}))
    wait_readable(router)
    got = list(transport.drain(router, 10, router=True))
    assert got == [transport.Received(Role.CLIENT, m.Query(7, "status", {}), None, b"d")]


def test_drain_hands_back_garbage_as_protocol_errors_and_goes_on(ctx: zmq.Context) -> None:
    router, dealer = pair(ctx, "garbage")
    dealer.send_multipart([b"ZQC1", b"\xc1not msgpack"])  # a zq signature, a bad header
    dealer.send_multipart([b"HTTP", b"GET /"])  # not a zq peer at all
    transport.send(dealer, Role.WORKER, m.Heartbeat())
    got: list[transport.Received] = []
    for _ in range(100):  # bounded: the three arrive in order, maybe not at once
        wait_readable(router)
        got.extend(transport.drain(router, 10, router=True))
        if len(got) >= 3:
            break
    assert [(g.role, g.message, type(g.error), g.peer) for g in got] == [
        (Role.CLIENT, None, ProtocolError, b"d"),  # claims to be a client: it is told
        (None, None, ProtocolError, b"d"),  # no zq signature: dropped silently
        (Role.WORKER, m.Heartbeat(), type(None), b"d"),
    ]


def test_drain_with_expect_refuses_another_roles_message(ctx: zmq.Context) -> None:
    router, dealer = pair(ctx, "expect")
    transport.send(router, Role.WORKER, m.Heartbeat(), peer=b"d")  # a worker's, not a master's
    wait_readable(dealer)
    [got] = transport.drain(dealer, 10, expect=Role.MASTER)
    assert got.message is None and got.role is Role.WORKER
    assert isinstance(got.error, ProtocolError) and "worker message" in str(got.error)


def test_drain_stops_at_its_bound_and_leaves_the_rest_queued(ctx: zmq.Context) -> None:
    router, dealer = pair(ctx, "bound")
    for i in range(5):
        transport.send(router, Role.MASTER, m.Reply(i, True, None), peer=b"d")
    seen: list[int] = []
    for _ in range(100):  # bounded: all five are read, at most two a call
        wait_readable(dealer)
        batch = list(transport.drain(dealer, 2, expect=Role.MASTER))
        assert 1 <= len(batch) <= 2
        seen.extend(g.message.request_id for g in batch)  # type: ignore[union-attr]
        if len(seen) == 5:
            break
    assert seen == [0, 1, 2, 3, 4]


def test_drain_is_lazy_a_caller_that_stops_leaves_messages_queued(ctx: zmq.Context) -> None:
    router, dealer = pair(ctx, "lazy")
    for i in range(3):
        transport.send(router, Role.MASTER, m.Reply(i, True, None), peer=b"d")
    wait_readable(dealer)
    for got in transport.drain(dealer, 10):
        assert got.message == m.Reply(0, True, None)
        break  # as a loop does when its deadline passes or its socket closes
    frames = dealer.recv_multipart()  # the next one is still there
    assert codec.decode(frames)[1] == m.Reply(1, True, None)


def test_drain_on_a_closed_socket_raises_a_transport_error(ctx: zmq.Context) -> None:
    _, dealer = pair(ctx, "closed")
    dealer.close(linger=0)
    with pytest.raises(TransportError):
        list(transport.drain(dealer, 10))
