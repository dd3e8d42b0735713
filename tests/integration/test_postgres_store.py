"""Issue 16, the PostgreSQL store end to end: real `zq master --store postgresql://...`
and `zq worker` processes against a real server (tests/pg.py). kill -9 of the master
in a durable storm and a restart on the same database lose nothing and record one
result per task; a task running across the restart is adopted; a database that cannot
be reached for a while makes the master answer BUSY, not ACCEPTED, and it carries on
once the database is back.

Executions are counted on the workers' side (tasks.log_run, tests/integration/storm.py).
"""

from __future__ import annotations

from collections import Counter

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import Cluster, wait_until
from tests.integration.storm import WAVE, Storm, assert_one_result_each, runs
from zq.core.messages import State

APP = "tests.apps.e2e_tasks"
psycopg = pytest.importorskip("psycopg")
from zq.store.postgres import PostgresStore  # noqa: E402  (after the importorskip)


def test_kill9_of_the_master_in_a_durable_storm_loses_nothing(cluster, storm: Storm,
                                                              database):
    """300 tasks acknowledged (so committed to PostgreSQL), running on two workers, then
    kill -9 of the master; 150 more submitted while it is down and after its restart on
    the same database. Every future resolves, each task has exactly one recorded
    result, and each ran at least once."""
    futures = storm.futures
    storm.start(database)
    with zq.Client(cluster.endpoint) as client:
        storm.under_way(client)  # all acknowledged: committed to the database
        cluster.master.kill()
        assert storm.ran() < 6 * WAVE, "the storm was over before the kill"
        storm.release()
        storm.wave(client)  # submitted while the master is down
        assert not client.flush(0.2)
        cluster.start_master(database)
        for _ in range(2):
            storm.wave(client)
        results = [f.result(timeout=60) for f in futures]
        assert [r.partition(":")[0] for r in results] == [str(i) for i in range(len(futures))]
        assert_one_result_each(client, futures)
    assert set(runs(storm.log)) == {str(i) for i in range(len(futures))}
    with zq.Client(cluster.endpoint) as fresh:  # knows nothing: the results are the store's
        assert [fresh.future(f.id).result(timeout=20) for f in futures] == results
    cluster.master.kill()
    store = PostgresStore(database)  # the results are in PostgreSQL indeed
    try:
        assert Counter(r.state for r in store.load()) == {State.SUCCEEDED: len(futures)}
    finally:
        store.close()


def test_a_task_running_across_a_master_restart_is_adopted(tmp_path, database):
    """kill -9 of the master while a worker runs a long task: restored from PostgreSQL,
    the task is kept leased by the worker that re-registers with it, not run again.
    The master holds restored tasks one liveness window for their workers to come back;
    this cluster uses the default window (3 s), not the 1 s of the other tests, which a
    worker's reconnect can outlast on a loaded machine (then the task runs again
    elsewhere, at least once, as promised: not what this test is about)."""
    log, gate = tmp_path / "runs", tmp_path / "gate"
    cluster = Cluster(tmp_path, heartbeat=0.25, liveness=12)
    try:
        cluster.start_master(database)
        cluster.start_worker(APP, name="w1", concurrency=1, extra=("--prefetch", "0"))
        with zq.Client(cluster.endpoint) as client:
            f = client.submit(t.log_run, str(log), "long", gate=str(gate))
            wait_until(lambda: runs(log)["long"] == 1, 20, "the long task to start on w1")
            cluster.master.kill()
            cluster.start_worker(APP, name="w2", concurrency=1, extra=("--prefetch", "0"),
                                 wait=False)
            cluster.start_master(database)
            cluster.wait_workers({"w1", "w2"})
            wait_until(lambda: client.get(f.id)["state"] == "running", 10, "the adoption")
            assert client.get(f.id)["worker"] == "w1"
            gate.touch()
            assert f.result(timeout=30) == "long"
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.close()
    assert runs(log) == Counter(long=1)


def test_a_database_out_of_reach_means_busy_then_the_master_carries_on(
        cluster, tmp_path, database, pg_server):
    """The master's connection is cut and new ones are refused (the database stops
    accepting connections): submissions are not acknowledged while commits fail (the
    master says so and answers BUSY), the master stays up, and once the database
    takes connections again every task is committed, runs, and has one result."""
    name = database.rsplit("/", 1)[1]
    log = tmp_path / "runs"
    cluster.start_master(database)
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=4)
    with zq.Client(cluster.endpoint) as client, \
            psycopg.connect(pg_server.url, autocommit=True) as admin:
        before = [client.submit(t.log_distinct_run, str(log), f"b{i}", 0) for i in range(20)]
        assert [f.result(timeout=30).partition(":")[0] for f in before] == [
            f"b{i}" for i in range(20)]
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s", (name,))
        during = [client.submit(t.log_distinct_run, str(log), f"d{i}", 0) for i in range(20)]
        wait_until(lambda: "submissions get BUSY" in cluster.master.output(), 20,
                   "the master to find it cannot commit")
        assert not client.flush(0.5)  # not acknowledged: nothing could be committed
        assert runs(log).keys().isdisjoint(f"d{i}" for i in range(20))
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert [f.result(timeout=30).partition(":")[0] for f in during] == [
            f"d{i}" for i in range(20)]
        assert_one_result_each(client, before + during)
    assert cluster.master.alive()
    assert "the store commits again" in cluster.master.output()
    assert runs(log) == Counter({f"{p}{i}": 1 for p in "bd" for i in range(20)})
