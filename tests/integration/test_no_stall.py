"""Issue 10, finding 7: under a burst of submissions the master's loop keeps coming
round, so nobody takes it for lost. Many clients submit at once to a master with the
SQLite store (before the fix, one turn read every message waiting and committed and
folded all of it: seconds, during which workers and clients gave up on the master).

Counts, not timings: no worker is declared lost (the master's log), no worker reconnects
(its log) and no client reconnects (the client library's warnings), with the usual 1 s
liveness window on both sides. The longest turn itself is measured in bench/stall.py.
"""

from __future__ import annotations

import json
import sys

from tests.integration.harness import Proc, wait_until

APP = "tests.apps.e2e_tasks"
PROCESSES, CLIENTS, TASKS = 2, 10, 5000  # 100,000 tasks, 100 SUBMITs of 1,000 at once


def test_a_burst_of_submissions_loses_no_worker_and_no_client(cluster, tmp_path):
    cluster.start_master(str(tmp_path / "zq.db"))
    workers = [cluster.start_worker(APP, name=f"w{i}", pool="thread", concurrency=1,
                                    extra=("--prefetch", "1000")) for i in (1, 2)]
    gate = tmp_path / "gate"
    procs = []
    for i in range(PROCESSES):
        ready = tmp_path / f"ready-{i}"
        proc = Proc([cluster.endpoint, str(CLIENTS), str(TASKS), str(gate), str(ready),
                     str(cluster.heartbeat), str(cluster.liveness)], tmp_path / f"clients-{i}.log",
                    program=[sys.executable, "-m", "tests.integration.burst_clients"])
        cluster.procs.append(proc)
        procs.append((proc, ready))
    wait_until(lambda: all(ready.exists() for _, ready in procs), 60, "the clients to start")
    gate.touch()
    for proc, _ in procs:
        assert proc.wait(300) == 0, proc.output()[-3000:]
    reports = [json.loads([ln for ln in p.output().splitlines() if ln.startswith("{")][-1])
               for p, _ in procs]
    assert sum(r["results"] for r in reports) == PROCESSES * CLIENTS * TASKS
    assert [r["reconnects"] for r in reports] == [0] * PROCESSES, reports
    master = cluster.master.output()
    assert "silent for" not in master, "a worker was declared lost"
    assert [w.output().count("no message from the master") for w in workers] == [0, 0]
    assert cluster.workers() == {"w1", "w2"}
