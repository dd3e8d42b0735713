"""Issue 16, self-fencing: the active master A loses its database (its PostgreSQL link
goes through a fault proxy, which resets it and refuses new connections) while its
peers still reach it. A cannot renew its lease, so after FENCE_AT of a lease by its own
clock it stops serving: every peer hears STANDBY naming nobody, so the workers and the
client, given both masters, go round their lists to B, which takes the lease (A's
session is gone) and serves. Every task gets exactly one result while A's database is
still out of reach. When it comes back, A's renewal finds the lease moved and A exits
with code 3. Before self-fencing, A kept its peers (answering BUSY) and no task
submitted after the cut ran until its database came back.
"""

from __future__ import annotations

import re

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.faults.proxy import Proxy
from tests.integration.harness import Cluster, free_port, wait_until
from tests.integration.storm import WAVE, assert_one_result_each, runs
from tests.integration.test_failover import epochs

APP = "tests.apps.e2e_tasks"
psycopg = pytest.importorskip("psycopg")


def test_a_master_that_loses_its_database_fences_itself_and_its_peers_move_on(
        cluster: Cluster, tmp_path, database):  # noqa: F811
    pg_port = int(re.search(r":(\d+)/", database).group(1))
    db_link = Proxy(("127.0.0.1", pg_port)).start()
    try:
        a_db = database.replace(f":{pg_port}/", f":{db_link.port}/")
        a_end, b_end = cluster.endpoint, f"tcp://127.0.0.1:{free_port()}"
        log = tmp_path / "runs"
        a = cluster.start_master(a_db)
        b = cluster.start_master(database, bind=b_end, wait=False)
        cluster.master = a
        wait_until(lambda: "standby:" in b.output(), 20, "the second master to wait")
        for name in ("w1", "w2"):
            cluster.start_worker(APP, name=name, pool="thread", concurrency=4,
                                 connect=f"{a_end},{b_end}")
        futures: list = []

        def wave(client: zq.Client) -> None:
            for _ in range(WAVE):
                i = len(futures)
                futures.append(client.submit(t.log_distinct_run, str(log), str(i), 0.002))

        with zq.Client([a_end, b_end]) as client:
            for _ in range(3):
                wave(client)
            assert client.flush(10)  # committed through A
            db_link.refusing = True
            db_link.cut()
            wave(client)
            wait_until(lambda: epochs(b.output()), 30, "the standby to take the lease")
            cluster.endpoint, cluster.master = b_end, b
            wave(client)
            results = [f.result(timeout=60) for f in futures]  # A's database still cut
            assert a.alive()
            assert "stopped serving" in a.output()  # fenced, not gone
            assert [r.partition(":")[0] for r in results] == [
                str(i) for i in range(len(futures))]
            assert_one_result_each(client, futures)
            db_link.refusing = False
            assert a.wait(30) == 3
        assert "Stopped serving at once (exit code 3)" in a.output()
        (a_epoch,), (b_epoch,) = epochs(a.output()), epochs(b.output())
        assert b_epoch > a_epoch
        assert set(runs(log)) == {str(i) for i in range(len(futures))}
    finally:
        db_link.close()
