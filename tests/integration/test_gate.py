"""The master's doorkeeper (zq.gate) in one process, with real sockets on 127.0.0.1: its
ZAP answers, asked directly as libzmq asks them, and its count of open connections with
the cap it enforces and logs."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
import zmq

from tests.integration.harness import wait_until
from zq import transport
from zq.gate import Gate


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.term()


def handshake_outcomes(peers: list[tuple[zmq.Socket, zmq.Socket]], seen: list[str]) -> list[str]:
    """Update `seen` from each watched peer's monitor events: "in" once its handshake is
    done, a refusal's ZAP status, or "?" while it waits; and return a copy."""
    for i, (sock, monitor) in enumerate(peers):
        for _ in range(100):
            got = None if sock.closed else transport.read_event(monitor)
            if got is None:
                break
            if got[0] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                seen[i] = "in"
            elif got[0] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                seen[i] = str(got[1])
    return list(seen)


class Door:
    """A Gate and the ROUTER it guards, bound to a random loopback port."""

    def __init__(self, ctx: zmq.Context, *, loopback_only: bool = True, cap: int = 100) -> None:
        self.ctx = ctx
        self.gate = Gate(ctx, None, loopback_only=loopback_only, max_connections=cap,
                         fd_limit=1024)
        self.router, monitor = transport.master_socket(ctx, "tcp://127.0.0.1:0", 1 << 20)
        self.gate.start(monitor)
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peers: list[tuple[zmq.Socket, zmq.Socket]] = []
        self.seen: list[str] = []  # per peer: "in" (handshake done), a refusal's status, "?"

    def ask(self, address: str, mechanism: bytes = b"NULL", *credentials: bytes) -> list[bytes]:
        """One ZAP request, as libzmq sends it for a connection from `address`."""
        req = self.ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        try:
            req.connect("inproc://zeromq.zap.01")
            req.send_multipart([b"1.0", b"7", b"zq", address.encode(), b"", mechanism,
                                *credentials])
            assert req.poll(5000), "the gate did not answer"
            return req.recv_multipart()
        finally:
            req.close()

    def connect(self) -> None:
        self.peers.append(transport.watched_peer_socket(self.ctx, self.endpoint))
        self.seen.append("?")

    def outcomes(self) -> list[str]:
        """Per peer so far: "in" (handshake done), a refusal's status, or "?" (waiting)."""
        return handshake_outcomes(self.peers, self.seen)

    def hang_up(self, i: int) -> None:
        sock, monitor = self.peers[i]
        transport.unwatch(sock, monitor)
        sock.close(0)

    def close(self) -> None:
        for i, (sock, _) in enumerate(self.peers):
            if not sock.closed:
                self.hang_up(i)
        self.router.disable_monitor()
        self.router.close(0)
        self.gate.stop()


@pytest.fixture
def door(ctx: zmq.Context, request: pytest.FixtureRequest) -> Iterator[Door]:
    d = Door(ctx, **getattr(request, "param", {}))
    yield d
    d.close()


def status(reply: list[bytes]) -> bytes:
    return reply[2]


def test_without_keys_only_loopback_peers_are_admitted(door, caplog):
    caplog.set_level(logging.WARNING, logger="zq.gate")
    assert status(door.ask("127.0.0.1")) == b"200"
    assert status(door.ask("::1")) == b"200"
    assert status(door.ask("10.231.1.2")) == b"400"
    assert "refused a connection from 10.231.1.2" in caplog.text
    assert "--insecure" in caplog.text
    assert status(door.ask("203.0.113.9", b"PLAIN", b"user", b"pw")) == b"400"
    assert door.gate.refused == 2


@pytest.mark.parametrize("door", [{"loopback_only": False}], indirect=True)
def test_insecure_admits_any_address(door):
    assert status(door.ask("10.231.1.2")) == b"200"


def test_refusals_of_one_address_are_logged_once_a_period(door, caplog):
    caplog.set_level(logging.WARNING, logger="zq.gate")
    for _ in range(20):
        assert status(door.ask("10.9.9.9")) == b"400"
    assert caplog.text.count("refused a connection from 10.9.9.9") == 1
    assert door.gate.refused == 20


def test_an_unknown_curve_key_is_refused_with_its_address(door, caplog):
    caplog.set_level(logging.WARNING, logger="zq.gate")
    public, _ = zmq.curve_keypair()
    reply = door.ask("127.0.0.1", b"CURVE", zmq.utils.z85.decode(public))
    assert status(reply) == b"400"  # this gate has no keys at all: nobody's key is known
    assert f"from 127.0.0.1 with an unknown key {public.decode()}" in caplog.text


def test_a_malformed_request_is_answered_not_fatal(door):
    req = door.ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect("inproc://zeromq.zap.01")
        req.send_multipart([b"1.0", b"1"])
        assert req.poll(5000)
        assert req.recv_multipart()[2] == b"500"
    finally:
        req.close()
    assert status(door.ask("127.0.0.1")) == b"200"  # and it goes on answering


@pytest.mark.parametrize("door", [{"cap": 3}], indirect=True)
def test_past_the_cap_new_peers_wait_and_get_in_once_one_leaves(door, caplog):
    caplog.set_level(logging.INFO, logger="zq.gate")
    for _ in range(5):
        door.connect()
    wait_until(lambda: "?" not in door.outcomes(), what="every handshake to end")
    outcomes = door.outcomes()
    assert sorted(outcomes) == ["500", "500", "in", "in", "in"], outcomes
    assert "the limit is 3" in caplog.text and "near the limit of 3" in caplog.text
    wait_until(lambda: door.gate.connections == 3, what="the refused ones to be closed")
    door.hang_up(outcomes.index("in"))
    wait_until(lambda: door.gate.connections == 2, what="the gate to count the hang-up")
    door.connect()
    wait_until(lambda: door.outcomes()[-1] != "?", what="the new peer's handshake")
    assert door.outcomes()[-1] == "in"
