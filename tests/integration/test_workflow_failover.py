"""A workflow held on its inputs survives a failover (issue 17): two `zq master`
processes on one PostgreSQL store; a chain and a chord are accepted by the active one
and wait there (their first tasks not due yet); kill -9 of it; the standby takes the
lease, restores the held tasks with their inputs, and runs the workflows to their
results, which reach the client that submitted them."""

from __future__ import annotations

import pytest

import zq
from tests.apps import workflow_tasks as w
from tests.integration.harness import Cluster, free_port, wait_until

APP = "tests.apps.workflow_tasks"
psycopg = pytest.importorskip("psycopg")
HELD = 6.0  # seconds the first steps wait (eta): long enough to kill A before they are due



def test_held_workflows_run_to_their_results_on_the_standby(cluster: Cluster, database):
    a_end, b_end = cluster.endpoint, f"tcp://127.0.0.1:{free_port()}"
    a = cluster.start_master(database)
    b = cluster.start_master(database, bind=b_end, wait=False)
    cluster.master = a
    wait_until(lambda: "standby:" in b.output(), 20, "the second master to wait as standby")
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=4,
                         connect=f"{b_end},{a_end}")
    with zq.Client([b_end, a_end]) as client:
        chained = client.submit(zq.chain(w.add.s(1, 2).set(delay=HELD), w.mul.s(10),
                                         w.add.s(5)))
        chord = client.submit(zq.chord(zq.group(w.mul.s(i, 2).set(delay=HELD)
                                                for i in range(5)), w.total.s(100)))
        assert client.flush(10)  # acknowledged: in the database
        held = {t["id"]: t["state"] for t in client.tasks(limit=100)}
        assert len(held) == 9 and set(held.values()) == {"pending"}, held  # none ran yet
        a.kill()
        wait_until(lambda: "took the store's lease" in b.output(), 30,
                   "the standby to take the lease")
        cluster.endpoint, cluster.master = b_end, b
        assert chained.result(timeout=60) == 35
        assert chord.result(timeout=60) == 100 + sum(range(0, 10, 2))
