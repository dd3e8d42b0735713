"""Forged results and black-hole workers against a real master (issue 9, findings 7 and
8), played by peers that speak the protocol directly (tests/integration/raw_peer.py)."""

from __future__ import annotations

import threading

import msgpack

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import wait_until
from tests.integration.raw_peer import RawPeer
from zq.core import messages as m
from zq.core.messages import Role

APP = "tests.apps.e2e_tasks"


def test_a_forged_result_settles_nothing(cluster):
    """A peer registers with credit 0 and sends RESULT OK for a queued task, a delayed one
    and one running on another worker: acknowledged, ignored, counted; no future
    resolves with the forged value."""
    cluster.liveness = 40  # 10 s: the raw worker sends no heartbeat while it holds a task
    cluster.start_master("memory")
    with RawPeer(cluster.endpoint, Role.WORKER) as holder, \
            RawPeer(cluster.endpoint, Role.WORKER) as thief, zq.Client(cluster.endpoint) as client:
        holder.hello("holder", credit=1)
        running = client.submit("app:f", 1)
        holder.recv_until(lambda x: isinstance(x, m.Task))
        queued = client.submit("app:f", 2)  # the holder is full: it waits
        delayed = client.options(delay=60.0).submit("app:f", 3)
        assert client.flush(10)
        thief.hello("thief", credit=0)
        victims = [running.id, queued.id, delayed.id]
        thief.send(m.Result([(tid, 1, 0, msgpack.packb("forged")) for tid in victims]))
        ack = thief.recv_until(lambda x: isinstance(x, m.Ack))
        assert sorted(ack.ids) == sorted(victims)  # acknowledged ...
        states = {tid: client.get(tid)["state"] for tid in victims}
        assert states == {running.id: "running", queued.id: "queued", delayed.id: "pending"}
        assert client.status()["ignored_results"] == 3  # ... ignored and counted
        assert not any(f.done() for f in (running, queued, delayed))
        holder.send(m.Result([(running.id, 1, 0, msgpack.packb("real"))]))
        assert running.result(timeout=10) == "real"


def test_a_black_hole_worker_does_not_starve_tasks_with_a_time_limit(cluster):
    """A peer says HELLO with a huge credit, heartbeats, takes tasks and never answers;
    a good worker is there too. Tasks with timeout=2 all complete, on the good worker."""
    cluster.start_master("memory")
    stop = threading.Event()
    with RawPeer(cluster.endpoint, Role.WORKER) as hole:
        hole.hello("black-hole", credit=2**24, concurrency=1)
        taken: set[str] = set()

        def stay_alive() -> None:  # heartbeats, and reads (so it never blocks), only
            while not stop.is_set():
                hole.send(m.Heartbeat())
                msg = hole.recv(0.1)
                if isinstance(msg, m.Task):
                    taken.update(e[0] for e in msg.entries)

        thread = threading.Thread(target=stay_alive, daemon=True)
        thread.start()
        try:
            with zq.Client(cluster.endpoint) as client:
                futures = [client.options(timeout=2.0).submit(t.add, i, 1) for i in range(50)]
                wait_until(lambda: len(taken) >= 1, 10, "the black hole to take tasks")
                cluster.start_worker(APP, name="good", pool="thread", concurrency=4)
                assert [f.result(timeout=60) for f in futures] == [i + 1 for i in range(50)]
                st = client.status()
                assert st["timed_out"] >= 1
                hole_row = next(w for w in st["workers"] if w["name"] == "black-hole")
                assert hole_row["credit"] <= 1 + 2000 and hole_row["running"] == 0
        finally:
            stop.set()
            thread.join(5)
