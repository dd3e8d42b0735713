"""concurrent.futures semantics where a worker holds a prefetch queue (issue 13, protocol
1.4's STARTED): a task waiting in the worker's queue is not running() and cancel()
succeeds; the running one is running() and cancel() returns False; the master's `get`
shows the real start (after the task before it in the slot ended) and a queue wait up to
it. And Executor.shutdown(cancel_futures=True) cancels what a map() has not submitted
yet. Written from the concurrent.futures documentation; what runs is known from gate
files the tasks touch, never from sleeps."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pytest

import zq
from tests.apps import futures_tasks as t
from tests.integration.harness import wait_until

APP = "tests.apps.futures_tasks"


def prefetching_worker(cluster) -> None:
    """One thread, and room for three more tasks in the worker's own queue."""
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1,
                         extra=("--prefetch", "3"))


def test_prefetched_is_not_running_and_cancels_the_running_one_does_not(cluster,
                                                                        tmp_path: Path):
    prefetching_worker(cluster)
    s1, g1, s2, g2, s3, g3 = (str(tmp_path / n) for n in ("s1", "g1", "s2", "g2", "s3", "g3"))
    with zq.Client(cluster.endpoint) as client:
        a = client.submit(t.gated, s1, g1, "a")
        wait_until(lambda: Path(s1).exists(), 30, "a to start")
        b = client.submit(t.gated, s2, g2, "b")
        c = client.submit(t.gated, s3, g3, "c")
        # b and c are handed to the worker (its prefetch), behind a in its only slot
        wait_until(lambda: client.get(c.id)["state"] == "running", 30, "c to be leased")
        assert client.get(b.id)["state"] == "running"

        assert a.running()  # it went to an idle slot: started at its lease
        assert not b.running() and not c.running()  # waiting in the worker's queue
        assert a.cancel() is False and not a.cancelled()
        assert b.cancel() is True and b.cancelled() and b.done()
        # w1 drops b (answers CANCELLED) before a ends: else b could start meanwhile
        # and be stopped there (as concurrent.futures cannot, zq's cancel is a request)
        wait_until(lambda: client.get(b.id)["state"] == "cancelled", 30, "b cancelled")

        Path(g1).touch()
        assert a.result(timeout=30) == "a"
        assert not a.running() and a.done() and a.cancel() is False
        wait_until(lambda: Path(s3).exists(), 30, "c to start after a")  # b was dropped
        wait_until(c.running, 30, "the master to learn that c started")
        assert c.cancel() is False and not c.cancelled()
        Path(g3).touch()
        assert c.result(timeout=30) == "c"
        assert not c.running() and c.done()

        got_a, got_b, got_c = (client.get(f.id) for f in (a, b, c))
    assert not Path(s2).exists()  # b never ran
    assert got_b["state"] == "cancelled" and got_b["started"] is None
    # c started when a's slot freed, not when it was handed to the worker
    assert got_c["started"] >= got_a["finished"]
    assert got_c["queue_wait"] == pytest.approx(got_c["started"] - got_c["created"])
    assert got_c["runtime"] == pytest.approx(got_c["finished"] - got_c["started"])
    assert got_a["queue_wait"] == pytest.approx(got_a["started"] - got_a["created"])


def test_shutdown_cancel_futures_cancels_the_rest_of_a_map(cluster):
    """map() submits a window at a time; shutdown(cancel_futures=True) stops it there:
    what was submitted comes back, then CancelledError (a cancelled future's result())."""
    prefetching_worker(cluster)
    n = 1000
    config = zq.ClientConfig(batch_size=2, max_unacked=4)  # a window of 4 tasks
    ex = zq.Executor(cluster.endpoint, config=config)
    results = ex.map(t.echo, range(n), chunksize=2)
    got = [next(results)]
    ex.shutdown(cancel_futures=True)
    with pytest.raises(cf.CancelledError):
        for value in results:
            got.append(value)
    assert got == list(range(len(got)))  # in order, none lost before the cut
    assert len(got) <= 1 + 4  # the one read, and at most a window submitted after it
    assert list(results) == []  # and it ends there
