"""More of concurrent.futures' documented behaviour on a real cluster (issue 13), besides
tests/integration/test_executor_semantics.py: Executor.shutdown(wait=False) returns at
once and the futures still complete; shutdown(cancel_futures=True) over futures that
run, wait in a worker's queue and wait in the master's; wait() and as_completed() with a
cancelled future and as_completed's timeout; a lambda, closure or bound method refused
by Executor.submit and Executor.map. Written from the standard library's documentation;
what runs is known from gate files, never from sleeps."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pytest

import zq
from tests.apps import futures_tasks as t
from tests.apps import values_tasks as v
from tests.integration.harness import wait_until

APP = "tests.apps.futures_tasks"


def worker(cluster, prefetch: int = 3) -> None:
    """One thread, and room for `prefetch` more tasks in the worker's own queue."""
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1,
                         extra=("--prefetch", str(prefetch)))


def test_shutdown_without_wait_returns_at_once_and_futures_complete(cluster, tmp_path: Path):
    """"If wait is False then this method will return immediately and the resources
    associated with the executor will be freed when all pending futures are done"."""
    worker(cluster)
    s1, g1 = str(tmp_path / "s1"), str(tmp_path / "g1")
    ex = zq.Executor(cluster.endpoint)
    running = ex.submit(t.gated, s1, g1, "late")
    after = ex.submit(t.echo, "after")
    wait_until(lambda: Path(s1).exists(), 30, "the first task to start")
    ex.shutdown(wait=False)  # returns although a task runs (the gate is shut)
    assert not running.done()
    with pytest.raises(RuntimeError):
        ex.submit(t.echo, 1)
    Path(g1).touch()
    assert running.result(timeout=30) == "late" and after.result(timeout=30) == "after"
    ex.shutdown(wait=True)  # again: nothing left to wait for


def test_shutdown_cancel_futures_spares_only_the_running_future(cluster, tmp_path: Path):
    """"If cancel_futures is True, this method will cancel all pending futures that the
    executor has not started running": here pending in the master's queue and in the
    worker's own queue alike."""
    worker(cluster, prefetch=2)
    s0, g0, s, g = (str(tmp_path / n) for n in ("first", "g0", "s", "g"))
    ex = zq.Executor(cluster.endpoint)
    running = ex.submit(t.gated, s0, g0, "ran")
    wait_until(lambda: Path(s0).exists(), 30, "the first task to start")
    pending = [ex.submit(t.gated, s + str(i), g, i) for i in range(4)]
    wait_until(lambda: cluster.status()["counts"]["running"] == 3, 30,
               "two tasks in the worker's queue")
    assert cluster.status()["counts"]["queued"] == 2
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in pending)  # decided by the master before it returns
    assert not running.done() and not running.cancelled()
    Path(g).touch()  # a pending task that ran now would touch its s<i>
    Path(g0).touch()
    assert running.result(timeout=30) == "ran"
    assert not any((tmp_path / f"s{i}").exists() for i in range(4))


def test_wait_and_as_completed_count_a_cancelled_future_as_done(cluster, tmp_path: Path):
    worker(cluster, prefetch=0)
    s1, g1, s2 = str(tmp_path / "s1"), str(tmp_path / "g1"), str(tmp_path / "s2")
    with zq.Client(cluster.endpoint) as client:
        slow = client.submit(t.gated, s1, g1, "slow")
        wait_until(lambda: Path(s1).exists(), 30, "the slow task to start")
        queued = client.submit(t.gated, s2, g1, "never")
        assert client.flush(10)
        assert queued.cancel() is True
        done, not_done = cf.wait([slow, queued], timeout=30, return_when=cf.FIRST_COMPLETED)
        assert done == {queued} and not_done == {slow}
        order = cf.as_completed([slow, queued], timeout=0.5)
        assert next(order) is queued  # a cancelled future is done: yielded first
        with pytest.raises(TimeoutError):  # "if __next__() is called and the result
            next(order)  # isn't available after timeout seconds"
        Path(g1).touch()
        assert [f.result() for f in cf.as_completed([slow], timeout=30)] == ["slow"]
        with pytest.raises(cf.CancelledError):
            queued.result(timeout=0)
    assert not Path(s2).exists()


def test_executor_refuses_a_lambda_closure_or_bound_method_at_submit(cluster):
    """Without ship_code nothing a worker cannot find by name leaves the client."""
    worker(cluster, prefetch=0)

    def closure(x):
        return x

    with zq.Executor(cluster.endpoint) as ex:
        for fn in (lambda x: x, closure, v.Holder().method):
            with pytest.raises(zq.ConfigError, match="module-level function"):
                ex.submit(fn, 1)
            with pytest.raises(zq.ConfigError, match="module-level function"):
                ex.map(fn, [1, 2])
        assert ex.submit(t.echo, 3).result(timeout=30) == 3  # the executor goes on
        assert cluster.status()["counts"]["succeeded"] == 1  # nothing else was sent
