"""Issue 16, a standby that takes over: two `zq master` processes on one PostgreSQL
store, workers and a client given both (`--connect a,b`). The first holds the store's
lease and serves; the second waits as a standby and answers peers STANDBY, naming the
active one. kill -9 of the active master in a durable storm: the standby takes the
lease (its epoch one more), restores, serves; the workers and the client move to it by
themselves; every task has exactly one recorded result and ran; the masters' logs and
the lease row show that they served one after the other, under distinct epochs.

Executions are counted on the workers' side (tasks.log_distinct_run), as in
test_postgres_store.py.
"""

from __future__ import annotations

import re
import signal
from collections import Counter

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import Cluster, free_port, wait_until
from tests.integration.raw_peer import RawPeer
from tests.integration.storm import WAVE, Storm, assert_one_result_each, runs
from zq.core import messages as m
from zq.core.messages import Role

APP = "tests.apps.e2e_tasks"
psycopg = pytest.importorskip("psycopg")

TOOK = re.compile(r"took the store's lease \(epoch (\d+)\)")



def epochs(log: str) -> list[int]:
    return [int(e) for e in TOOK.findall(log)]


def test_kill9_of_the_active_master_the_standby_takes_over_and_nothing_is_lost(
        cluster: Cluster, storm: Storm, database):
    a_end, b_end = cluster.endpoint, f"tcp://127.0.0.1:{free_port()}"
    a = cluster.start_master(database)
    b = cluster.start_master(database, bind=b_end, wait=False)
    cluster.master = a
    wait_until(lambda: "standby:" in b.output(), 20, "the second master to wait as standby")
    assert epochs(b.output()) == []
    for name in ("w1", "w2"):  # the standby first: it sends them to the active one
        cluster.start_worker(APP, name=name, pool="thread", concurrency=4,
                             connect=f"{b_end},{a_end}")
    futures, log = storm.futures, storm.log
    with zq.Client([b_end, a_end]) as client:
        storm.under_way(client)  # all acknowledged: committed to the database
        a.kill()
        assert storm.ran() < 6 * WAVE, "the storm was over before the kill"
        storm.release()
        storm.wave(client)  # submitted while the standby takes over
        wait_until(lambda: epochs(b.output()), 20, "the standby to take the lease")
        cluster.endpoint, cluster.master = b_end, b
        for _ in range(2):
            storm.wave(client)
        results = [f.result(timeout=60) for f in futures]
        assert [r.partition(":")[0] for r in results] == [str(i) for i in range(len(futures))]
        assert_one_result_each(client, futures)
    assert set(runs(log)) == {str(i) for i in range(len(futures))}
    # One after the other: B took the lease once, after A (killed), under a later epoch,
    # and the lease row names B's epoch.
    (a_epoch,), (b_epoch,) = epochs(a.output()), epochs(b.output())
    assert b_epoch > a_epoch
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT epoch FROM zq_lease").fetchone()[0] == b_epoch
    assert b.alive()
    # Both workers come back to B; one may still be trying A (dead) when the results are
    # in, so wait for the registration rather than read a snapshot.
    cluster.wait_workers({"w1", "w2"})


def test_a_standby_answers_standby_naming_the_active_master(cluster: Cluster, database):
    """Whatever a peer sends a standby (a worker's HELLO, a client's QUERY) gets STANDBY
    with the active master's advertised endpoint, and nothing else."""
    b_end = f"tcp://127.0.0.1:{free_port()}"
    cluster.start_master(database, "--advertise", "tcp://active.example:5555")
    b = cluster.start_master(database, bind=b_end, wait=False)
    wait_until(lambda: "standby:" in b.output(), 20, "the second master to wait as standby")
    for role, msg in ((Role.CLIENT, m.Query(1, "status", {})),
                      (Role.WORKER, m.Hello("w", "h", 1, ["default"], 1, "thread", 1, []))):
        peer = RawPeer(b_end, role)
        try:
            peer.send(msg)
            assert peer.recv(timeout=10) == m.Standby("tcp://active.example:5555")
            assert peer.recv(timeout=0.5) is None  # and nothing else
        finally:
            peer.close()


def test_a_master_whose_lease_moves_stops_serving_at_once(cluster: Cluster, database):
    """Another master took the lease (here: the epoch moved under it): the master finds
    out at its next renewal or commit, closes its socket and exits with code 3."""
    a = cluster.start_master(database)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE zq_lease SET epoch = epoch + 1, holder = 'another master'")
    assert a.wait(20) == 3
    assert "Stopped serving at once (exit code 3)" in a.output()


def test_a_task_running_across_a_failover_is_adopted_not_run_again(tmp_path, database):
    """kill -9 of the active master while w1 runs a long task: the standby takes over,
    restores the task as running, and w1, re-registering with it, keeps it: it is not
    run again on w2, which the new master has free meanwhile. w1 notices the loss after
    a liveness window of silence; the new master holds restored tasks two windows
    (LEASE_HOLD). (A 3 s window, as in test_postgres_store's restart adoption test: a
    worker's reconnect on a loaded machine can outlast 1 s, and then the task rightly
    runs again elsewhere.)"""
    log, gate = tmp_path / "runs", tmp_path / "gate"
    cluster = Cluster(tmp_path, heartbeat=0.25, liveness=12)
    a_end, b_end = cluster.endpoint, f"tcp://127.0.0.1:{free_port()}"
    both = f"{a_end},{b_end}"
    try:
        a = cluster.start_master(database)
        b = cluster.start_master(database, bind=b_end, wait=False)
        cluster.master = a
        wait_until(lambda: "standby:" in b.output(), 20, "the standby")
        cluster.start_worker(APP, name="w1", concurrency=1, extra=("--prefetch", "0"),
                             connect=both)
        with zq.Client([a_end, b_end]) as client:
            f = client.submit(t.log_run, str(log), "long", gate=str(gate))
            wait_until(lambda: runs(log)["long"] == 1, 20, "the long task to start on w1")
            a.kill()
            cluster.start_worker(APP, name="w2", concurrency=1, extra=("--prefetch", "0"),
                                 connect=both, wait=False)
            wait_until(lambda: epochs(b.output()), 20, "the standby to take the lease")
            cluster.endpoint, cluster.master = b_end, b
            cluster.wait_workers({"w1", "w2"})
            wait_until(lambda: client.get(f.id)["state"] == "running", 10, "the adoption")
            assert client.get(f.id)["worker"] == "w1"
            gate.touch()
            assert f.result(timeout=30) == "long"
            assert runs(log) == Counter(long=1)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.close()


def test_a_hung_master_loses_its_lease_by_time_and_stops_when_it_wakes(
        cluster: Cluster, tmp_path, database):
    """The active master stops (SIGSTOP: like a host cut off, the database still holds
    its session open, so only the lease's expiry, by the database's clock, frees it) in
    a durable storm: the standby takes over within the lease's window, every task gets
    its one result; woken (SIGCONT), the old master finds its lease moved at its next
    renewal or commit and exits with code 3, having served nothing more."""
    a_end, b_end = cluster.endpoint, f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path / "runs"
    a = cluster.start_master(database)
    b = cluster.start_master(database, bind=b_end, wait=False)
    cluster.master = a
    wait_until(lambda: "standby:" in b.output(), 20, "the second master to wait as standby")
    for name in ("w1", "w2"):
        cluster.start_worker(APP, name=name, pool="thread", concurrency=4,
                             connect=f"{a_end},{b_end}")
    futures: list = []

    def wave(client: zq.Client) -> None:
        for _ in range(WAVE):
            i = len(futures)
            futures.append(client.submit(t.log_distinct_run, str(log), str(i), 0.002))

    with zq.Client([a_end, b_end]) as client:
        for _ in range(4):
            wave(client)
        assert client.flush(10)
        a.signal(signal.SIGSTOP)
        try:
            wave(client)
            wait_until(lambda: epochs(b.output()), 30, "the standby to take the lease")
            cluster.endpoint, cluster.master = b_end, b
            wave(client)
            results = [f.result(timeout=60) for f in futures]
        finally:
            a.signal(signal.SIGCONT)
        assert a.wait(30) == 3
        assert [r.partition(":")[0] for r in results] == [str(i) for i in range(len(futures))]
        assert_one_result_each(client, futures)
    assert "Stopped serving at once (exit code 3)" in a.output()
    (a_epoch,), (b_epoch,) = epochs(a.output()), epochs(b.output())
    assert b_epoch > a_epoch
    assert set(runs(log)) == {str(i) for i in range(len(futures))}
