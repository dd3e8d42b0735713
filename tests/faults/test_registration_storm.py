"""A master killed -9 in the middle of a registration storm (issue 10): 200 light workers
(bench/fake_worker.py, which logs each task it answers; behind the fault proxy, so their
HELLOs arrive spread over a second) are registering and taking
queued tasks when the master dies; restarted on its store, it gets all 200 back, every
task has one result, no lease (task, attempt) runs twice, and no task is leased twice
by one master: the only reruns are of tasks whose result the killed master had not
recorded, under a new attempt."""

from __future__ import annotations

import sys
from collections import Counter

import zq
from tests.apps import e2e_tasks as t
from tests.faults.checks import check_tasks
from tests.integration.harness import ROOT, Proc, wait_until

WORKERS, TASKS = 200, 2000


def test_a_master_killed_while_200_workers_register(cluster, proxy_of, tmp_path):
    store, log = str(tmp_path / "zq.db"), tmp_path / "runs"
    cluster.heartbeat, cluster.liveness = 1.0, 3  # the defaults: a window longer than the delay
    cluster.start_master(store)
    spread = proxy_of(seed=21)  # 0.1-1.1 s each way: the HELLOs arrive over a second
    for link in (spread.up, spread.down):
        link.delay, link.jitter = 0.6, 0.5
    with zq.Client(cluster.endpoint) as client:
        futures = [client.submit(t.add, i, i) for i in range(TASKS)]  # queued: no worker yet
        assert client.flush(30)
        fakes = Proc(["--connect", spread.endpoint, "--count", str(WORKERS), "--credit", "5",
                      "--heartbeat", str(cluster.heartbeat), "--log", str(log)],
                     tmp_path / "fakes.log", program=[sys.executable,
                                                       str(ROOT / "bench" / "fake_worker.py")])
        cluster.procs.append(fakes)
        registered = wait_until(lambda: len((cluster.status() or {}).get("workers", ())) >= 20
                                and len(cluster.status()["workers"]), 60,
                                "the storm to be under way")
        cluster.master.kill()
        cluster.start_master(store)
        wait_until(lambda: len((cluster.status() or {}).get("workers", ())) == WORKERS, 90,
                   "all 200 workers back after the restart")
        results = [f.result(timeout=60) for f in futures]  # fake workers answer None
        assert results == [None] * TASKS
        check_tasks(client, [f.id for f in futures])
    assert fakes.alive()
    leases = Counter()  # (task id, attempt): one lease each
    for line in log.read_text().splitlines():
        tid, attempt, _at = line.split()
        leases[tid, int(attempt)] += 1
    ids = {f.id for f in futures}
    ran = Counter(tid for tid, _ in leases.elements())
    assert set(ran) >= ids  # every task ran
    twice = [lease for lease, n in leases.items() if n > 1]
    assert not twice, f"a lease ran twice: {twice[:5]}"
    # One lease under each master at most: the second only when the first one's result
    # died with the killed master (the attempt is stored with the lease, so it grows).
    thrice = [tid for tid, n in ran.items() if n > 2]
    assert not thrice, f"tasks leased more than once by one master: {thrice[:5]}"
    assert registered < WORKERS, "the kill came after the storm"
    print(f"{sum(ran.values()) - len(ran)} reruns (their results died with the master)")
