"""Finding 10, file descriptors: the master raises its open-file limit to the hard one,
caps its connections below it, and past the cap turns new peers away with a log line:
it never runs out of descriptors (libzmq would spin on accept(), new peers locked out,
nothing logged) and keeps serving the peers it has."""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest
import zmq

from tests.integration.harness import query, wait_until
from tests.integration.test_gate import handshake_outcomes
from zq import transport
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role

pytestmark = pytest.mark.skipif(
    shutil.which("prlimit") is None,
    reason="needs prlimit (util-linux) to start a master with a low limit")


def soft_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        row = next(line for line in f if line.startswith("Max open files"))
    return int(row.split()[3])


class Flood:
    """Idle peers: DEALERs that connect and never send a thing, each watched until its
    handshake ends ("in", or the refusal's ZAP status)."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.peers: list[tuple[zmq.Socket, zmq.Socket]] = []
        self.seen: list[str] = []

    def add(self, endpoint: str, n: int) -> None:
        for _ in range(n):
            self.peers.append(transport.watched_peer_socket(self.ctx, endpoint))
            self.seen.append("?")

    def outcomes(self) -> list[str]:
        return handshake_outcomes(self.peers, self.seen)

    def close(self) -> None:
        for sock, monitor in self.peers:
            if not sock.closed:
                transport.unwatch(sock, monitor)
                sock.close(0)
        self.peers.clear()


@pytest.fixture
def flood() -> Iterator[Flood]:
    f = Flood()
    yield f
    f.close()
    f.ctx.term()


def test_the_soft_limit_is_raised_to_the_hard_one(cluster):
    master = cluster.start_master("memory", prefix=["prlimit", "--nofile=256:4096", "--"])
    assert soft_limit(master.pid) == 4096
    assert "open-file limit raised from 256 to 4096" in master.output()
    assert "accepting up to 3686 connections (open-file limit 4096)" in master.output()


def test_past_the_cap_peers_are_turned_away_logged_and_the_rest_served(cluster, flood):
    """300 idle peers, 25 at a time, at a master whose limit is 256 open files: it admits
    up to its cap (192), turns the others away with a log line, never runs out of
    descriptors, serves a peer it had before on, and a new one once the flood left."""
    master = cluster.start_master("memory", prefix=["prlimit", "--nofile=256:256", "--"])
    wait_until(lambda: "accepting up to 192 connections (open-file limit 256)" in master.output(),
               what="the master to say its cap")
    ctx = zmq.Context()
    first = transport.peer_socket(ctx, cluster.endpoint)  # a peer connected before the flood
    try:
        for _ in range(12):
            flood.add(cluster.endpoint, 25)
            wait_until(lambda: "?" not in flood.outcomes(), 30, "each handshake to end")
        outcomes = flood.outcomes()
        assert 150 < outcomes.count("in") <= 192 and outcomes.count("500") >= 300 - 192
        assert set(outcomes) == {"in", "500"}, set(outcomes)
        assert "the limit is 192" in master.output() and "near the limit of 192" in master.output()
        assert "cannot accept" not in master.output()  # it never ran out of descriptors
        first.send_multipart(codec.encode(Role.CLIENT, m.Query(1, "status", {})))
        assert first.poll(10_000), "the peer from before the flood is no longer served"
        flood.close()
        wait_until(lambda: query(cluster.endpoint, timeout=1) is not None, 30,
                   "a new peer to be served once the idle ones left")
        assert master.alive()
    finally:
        first.close(0)
        ctx.term()
