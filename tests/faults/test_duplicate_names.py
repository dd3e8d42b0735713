"""Fault: two workers started with the same --name (two containers, each pid 1 on one
hostname). The master knows a worker by the session token of its HELLO (issue 9,
finding 6), so both are served, each task has exactly one result, a worker that
reconnects keeps only its own tasks, and a master restart gives each its own back.

Real processes: a master and two thread-pool workers (so a task's pid is its worker's
pid, which `zq status` shows). Each task run creates started-TAG-ATTEMPT-PID and waits
for the gate go-TAG-ATTEMPT, so the test decides which run finishes first.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import zq
from tests.integration.conftest import cluster, pytest_runtest_makereport  # noqa: F401
from tests.integration.harness import Cluster, Proc, wait_until

APP = "tests.apps.session_tasks"
HOLD = f"{APP}:hold"
NAME = "dup"


def start_two(cluster: Cluster) -> dict[int, Proc]:  # noqa: F811
    """Two workers named NAME, one task at a time each; {pid: process}."""
    procs = [cluster.start_worker(APP, name=NAME, pool="thread", concurrency=1,
                                  extra=("--prefetch", "0"), wait=False) for _ in range(2)]
    wait_until(lambda: len(entries(cluster)) == 2, 20, "both workers named dup to register")
    return {p.pid: p for p in procs}


def entries(cluster: Cluster) -> list[dict[str, Any]]:  # noqa: F811
    st = cluster.status()
    return [w for w in st["workers"] if w["name"] == NAME] if st else []


def running_by_pid(cluster: Cluster) -> dict[int, int]:  # noqa: F811
    """Tasks leased per worker process, over the entries the master holds now."""
    out: dict[int, int] = {}
    for w in entries(cluster):
        out[w["pid"]] = out.get(w["pid"], 0) + w["running"]
    return out


def started(gates: Path, tag: str, attempt: int) -> list[int]:
    """Pids that started this attempt of tag."""
    return [int(p.name.rsplit("-", 1)[1]) for p in gates.glob(f"started-{tag}-{attempt}-*")]


def wait_started(gates: Path, tag: str, attempt: int) -> int:
    pids = wait_until(lambda: started(gates, tag, attempt), 20, f"{tag} attempt {attempt} to start")
    assert len(pids) == 1, f"{tag} attempt {attempt} started twice: {pids}"
    return pids[0]


def release(gates: Path, tag: str, attempt: int) -> None:
    (gates / f"go-{tag}-{attempt}").touch()


def test_both_are_served_and_a_reconnecting_worker_keeps_only_its_own_tasks(
        cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    gates = tmp_path / "gates"
    gates.mkdir()
    cluster.start_master("memory")
    procs = start_two(cluster)
    shown = entries(cluster)
    assert {w["pid"] for w in shown} == set(procs)
    tokens = [w["session"] for w in shown]
    assert all(len(t) == 8 for t in tokens) and tokens[0] != tokens[1]

    with zq.Client(cluster.endpoint) as client:
        # Both are served: each takes one of two tasks.
        f1, f2 = client.submit(HOLD, str(gates), "t1"), client.submit(HOLD, str(gates), "t2")
        x = wait_started(gates, "t1", 1)
        y = wait_started(gates, "t2", 1)
        assert {x, y} == set(procs)

        # X stops answering: the master drops it and t1 runs again, on Y, once Y is free.
        procs[x].signal(signal.SIGSTOP)
        release(gates, "t2", 1)
        assert f2.result(timeout=20) == {"tag": "t2", "attempt": 1, "pid": y}
        assert wait_started(gates, "t1", 2) == y

        # X wakes up, reconnects and says it still runs t1 (attempt 1). Y keeps t1: by
        # name, X would take the lease of Y's run over.
        procs[x].signal(signal.SIGCONT)
        wait_until(lambda: x in running_by_pid(cluster), 20, "X to register again")
        assert running_by_pid(cluster) == {x: 0, y: 1}

        # Y's run finishes first and is the result; X's late run changes nothing.
        release(gates, "t1", 2)
        assert f1.result(timeout=20) == {"tag": "t1", "attempt": 2, "pid": y}
        release(gates, "t1", 1)
        wait_until(lambda: running_by_pid(cluster) == {x: 0, y: 0}, 20, "both to be idle")
        assert client.get(f1.id)["state"] == "succeeded" and client.get(f1.id)["attempt"] == 2
        assert client.get(f2.id)["attempt"] == 1

        # X is served again after its reconnect.
        f3, f4 = client.submit(HOLD, str(gates), "t3"), client.submit(HOLD, str(gates), "t4")
        assert {wait_started(gates, "t3", 1), wait_started(gates, "t4", 1)} == {x, y}
        release(gates, "t3", 1)
        release(gates, "t4", 1)
        assert {f3.result(timeout=20)["pid"], f4.result(timeout=20)["pid"]} == {x, y}
    assert started(gates, "t2", 2) == [] and started(gates, "t1", 3) == []


def test_a_master_restart_adopts_each_workers_own_running_tasks(
        cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    gates = tmp_path / "gates"
    gates.mkdir()
    store = str(tmp_path / "zq.db")
    cluster.start_master(store)
    procs = start_two(cluster)
    with zq.Client(cluster.endpoint) as client:
        futures = {tag: client.submit(HOLD, str(gates), tag) for tag in ("t1", "t2")}
        pid_of = {tag: wait_started(gates, tag, 1) for tag in futures}
        assert set(pid_of.values()) == set(procs)

        cluster.master.kill()  # kill -9: the leases were never stored
        cluster.start_master(store)
        wait_until(lambda: running_by_pid(cluster) == {pid: 1 for pid in procs}, 20,
                   "each worker to re-register with its own task")
        for tag in futures:
            release(gates, tag, 1)
        for tag, f in futures.items():
            assert f.result(timeout=20) == {"tag": tag, "attempt": 1, "pid": pid_of[tag]}
            assert started(gates, tag, 2) == []  # adopted, not run a second time
