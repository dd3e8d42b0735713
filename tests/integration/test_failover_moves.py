"""Issue 16: a worker or client that a standby sends to the active master's endpoint
while that master is dead (killed: nothing listens there any more) moves on at once,
round its list of masters, instead of waiting there for a liveness window of silence
(the defaults' 3 s for a worker, the client's 5 s: more than the failover takes).

A fake standby plays the standby: a ROUTER that answers whatever it hears with STANDBY
naming the dead endpoint, and counts the connections that reach it. The peer goes
round: standby, dead master (the hint), standby, ... Each visit to the dead endpoint
must end in a refused connection, never in a wait for silence; then a real master comes
up at that endpoint and the peer registers with it.
"""

from __future__ import annotations

import logging
import threading

import pytest
import zmq

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import Cluster, free_port, wait_until
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role

APP = "tests.apps.e2e_tasks"


class FakeStandby:
    """A ROUTER on a free loopback port answering every message STANDBY(hint), in a
    thread; `visits`: the distinct connections (peer identities) it has heard from."""

    def __init__(self, hint: str) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.reply = codec.encode(Role.MASTER, m.Standby(hint))
        self.peers: set[bytes] = set()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def visits(self) -> int:
        return len(self.peers)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            self.peers.add(frames[0])
            self.sock.send_multipart([frames[0], *self.reply])

    def __enter__(self) -> FakeStandby:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def dead() -> str:
    """An endpoint where no master listens (any longer)."""
    return f"tcp://127.0.0.1:{free_port()}"


def test_a_worker_sent_to_a_dead_master_moves_on_at_once(cluster: Cluster, dead: str):
    with FakeStandby(dead) as standby:
        w = cluster.start_worker(APP, name="w", pool="thread", wait=False,
                                 connect=f"{standby.endpoint},{dead}")
        wait_until(lambda: standby.visits >= 4, 40, "the worker to come round 4 times")
    log = w.output()
    assert log.count(f"connecting to {dead}") >= 2  # sent there, then its turn
    assert "no message from the master for" not in log, "it waited on the dead master"
    assert "no master reached at " + dead in log
    cluster.endpoint = dead
    cluster.start_master(bind=dead)  # the master at that endpoint is back
    cluster.wait_workers({"w"})


def test_a_client_sent_to_a_dead_master_moves_on_at_once(
        cluster: Cluster, dead: str, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="zq.client")
    with FakeStandby(dead) as standby, zq.Client([standby.endpoint, dead]) as client:
        f = client.submit(t.add, 1, 2)  # unacknowledged: the client waits for a master
        wait_until(lambda: standby.visits >= 4, 40, "the client to come round 4 times")
        said = [r.getMessage() for r in caplog.records]
        assert not [s for s in said if "silent for" in s], "it waited on the dead master"
        assert f"zq master at {dead} could not be reached; reconnecting" in said
        cluster.endpoint = dead
        cluster.start_master(bind=dead)
        cluster.start_worker(APP, name="w", pool="thread", connect=dead)
        assert f.result(timeout=30) == 3


def test_with_one_master_a_refused_connection_is_left_to_libzmq(
        cluster: Cluster, dead: str, caplog: pytest.LogCaptureFixture):
    """One endpoint: nowhere else to go, so libzmq goes on retrying the connection by
    itself; the submission goes through once the master is up."""
    caplog.set_level(logging.DEBUG, logger="zq.client")
    with zq.Client(dead) as client:
        f = client.submit(t.add, 2, 2)
        cluster.endpoint = dead
        cluster.start_master(bind=dead)
        cluster.start_worker(APP, name="w", pool="thread", connect=dead)
        assert f.result(timeout=30) == 4
    assert not [r for r in caplog.records if "could not be reached" in r.getMessage()]
