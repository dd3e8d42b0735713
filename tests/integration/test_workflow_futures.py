"""Futures as arguments (issue 17) with a real master and real workers: the master holds
a task until its inputs succeed and ships their results with it, the worker (process and
thread pools) puts them in place; an input that fails fails the task with
zq.DependencyFailed, a cancelled one cancels it; a durable master keeps held tasks and
the results they need across a kill -9, past the results' ttl."""

from __future__ import annotations

import concurrent.futures as cf
from collections import Counter

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import forgotten, wait_until

APP = "tests.apps.e2e_tasks"


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_futures_positional_keyword_and_nested(cluster, pool):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool=pool, concurrency=2)
    with zq.Client(cluster.endpoint) as client:
        total = client.submit(t.add, client.submit(t.add, 1, 2), b=client.submit(t.add, 3, 4))
        nested = client.submit(t.echo, {"list": [client.submit(t.add, "a", "b"), 5],
                                        "same": (total, total)})
        assert total.result(timeout=30) == 10
        assert nested.result(timeout=30) == {"list": ["ab", 5], "same": (10, 10)}


def test_a_held_task_waits_in_the_master_for_its_input(cluster, tmp_path):
    gate = tmp_path / "gate"
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    with zq.Client(cluster.endpoint) as client:
        slow = client.submit(t.log_run, str(tmp_path / "runs"), "slow", gate=str(gate))
        after = client.submit(t.add, slow, "-then")
        wait_until(lambda: client.get(slow.id)["state"] == "running", 20, "the input to run")
        assert client.get(after.id)["state"] == "pending"
        gate.touch()
        assert after.result(timeout=30) == "slow-then"


def test_a_failed_input_fails_the_task_and_a_cancelled_one_cancels_it(cluster, tmp_path):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    with zq.Client(cluster.endpoint) as client:
        broken = client.submit(t.fail, "ValueError", "no input")
        dependent = client.submit(t.echo, [broken])
        with pytest.raises(zq.DependencyFailed, match=broken.id) as info:
            dependent.result(timeout=30)
        assert info.value.input == broken.id
        assert isinstance(info.value.__cause__, ValueError)
        assert str(info.value.__cause__) == "no input"
        assert client.get(dependent.id)["state"] == "failed"

        later = client.options(delay=60).submit(t.add, 1, 1)
        waiting = client.submit(t.echo, later)
        client.cancel(later)
        with pytest.raises(cf.CancelledError):
            waiting.result(timeout=30)
        assert client.get(waiting.id)["state"] == "cancelled"


def test_large_array_results_travel_as_inputs(cluster):
    """A result with frames of its own (a 100 KB array) reaches the next task whole."""
    np = pytest.importorskip("numpy")
    from tests.apps import array_tasks as a
    cluster.start_master()
    cluster.start_worker("tests.apps.array_tasks", name="w1", pool="process")
    with zq.Client(cluster.endpoint) as client:
        doubled = client.submit(a.twice, np.ones(100_000, dtype=np.uint8))
        info = client.submit(a.describe, doubled, doubled).result(timeout=30)
    want = a.digest(np.full(100_000, 2, dtype=np.uint8))
    assert [(i[0], i[1], i[2], i[4]) for i in info] == [("|u1", (100_000,), True, want)] * 2


def test_held_tasks_and_kept_results_survive_a_master_restart(cluster, tmp_path):
    """kill -9 of a durable master while a task waits for its second input; the first
    input's result (ttl 0.2 s) is kept for it across the restart, long past its ttl."""
    store, log, gate = str(tmp_path / "zq.db"), tmp_path / "runs", tmp_path / "gate"
    cluster.start_master(store)
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    with zq.Client(cluster.endpoint) as client:
        brief = client.options(result_ttl=0.2)
        # Submitted together: `both` names quick before quick's result can expire.
        quick = brief.submit(t.add, 1, 2)
        slow = client.submit(t.log_run, str(log), "slow", gate=str(gate))
        both = client.submit(t.echo, [quick, slow])
        assert quick.result(timeout=30) == 3
        # A result nobody waits for, finished after quick's: once the master has forgotten
        # it, quick's ttl has passed too, and the master's expiry has looked at quick.
        expired = brief.submit(t.add, 0, 0)
        assert expired.result(timeout=30) == 0
        wait_until(lambda: client.get(slow.id)["state"] == "running", 20, "the slow input")
        wait_until(lambda: forgotten(client, expired.id), 20, "the other result to expire")
        assert client.get(quick.id)["state"] == "succeeded"  # kept, past its ttl
        cluster.master.kill()
        cluster.start_master(store)  # its first turn's expiry is later still
        assert client.get(both.id)["state"] == "pending"
        assert client.get(quick.id)["state"] == "succeeded"  # kept across the restart
        gate.touch()
        assert both.result(timeout=30) == [3, "slow"]
    assert Counter(line.split()[0] for line in log.read_text().splitlines())["slow"] >= 1
