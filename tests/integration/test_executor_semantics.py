"""zq.Executor and its futures behave as the concurrent.futures documentation says, on a
real master and worker (issue 13): running(), cancel() (False once running) against
revoke()/client.cancel() (stops a running task), Executor.map's timeout and chunksize,
shutdown, wait() and as_completed(). "Running now" is known from gate files the tasks
touch, never from sleeps."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path

import pytest

import zq
from tests.apps import futures_tasks as t
from tests.integration.harness import wait_until

APP = "tests.apps.futures_tasks"


def one_slot(cluster, pool: str = "thread", concurrency: int = 1) -> None:
    """A master and one worker that holds no prefetch: a second task stays queued."""
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool=pool, concurrency=concurrency,
                         extra=("--prefetch", "0"))


def test_running_and_cancel_follow_concurrent_futures(cluster, tmp_path: Path):
    one_slot(cluster)
    s1, g1, s2, g2 = (str(tmp_path / n) for n in ("s1", "g1", "s2", "g2"))
    with zq.Client(cluster.endpoint) as client:
        a = client.submit(t.gated, s1, g1, "a")
        wait_until(lambda: Path(s1).exists(), 30, "task a to start")
        assert a.cancel() is False  # running: left alone, as concurrent.futures does
        assert not a.cancelled() and not a.done()
        assert a.running()
        b = client.submit(t.gated, s2, g2, "b")  # the only slot is taken: b waits
        assert client.flush(10)
        assert not b.running()
        assert b.cancel() is True and b.cancelled() and b.done()
        Path(g1).touch()
        assert a.result(timeout=30) == "a"
        assert not a.running() and a.cancel() is False
        # b never runs: the next task gets the slot b would have blocked (its gate stays shut)
        assert client.submit(t.echo, "after").result(timeout=30) == "after"
        assert not Path(s2).exists()
        assert client.get(b.id)["state"] == "cancelled"


def test_revoke_stops_a_running_task(cluster, tmp_path: Path):
    one_slot(cluster, pool="process")
    s1, g1 = str(tmp_path / "s1"), str(tmp_path / "g1")
    with zq.Client(cluster.endpoint) as client:
        f = client.submit(t.gated, s1, g1)
        wait_until(lambda: Path(s1).exists(), 30, "the task to start")
        wait_until(f.running, 10, "f.running()")
        assert client.cancel(f) is True and f.cancelled()
        wait_until(lambda: client.get(f.id)["state"] == "cancelled", 30, "cancelled")
        # the slot is free again although the gate never opened: the task was stopped
        assert client.submit(t.echo, 1).result(timeout=30) == 1
        g2 = client.submit(t.gated, str(tmp_path / "s2"), str(tmp_path / "g2"))
        wait_until(lambda: (tmp_path / "s2").exists(), 30, "the second task to start")
        assert g2.revoke() is True and g2.cancelled()


def test_executor_map_timeout_chunksize_and_shutdown(cluster, tmp_path: Path):
    one_slot(cluster, concurrency=2)
    s1, g1 = str(tmp_path / "s1"), str(tmp_path / "g1")
    ex = zq.Executor(cluster.endpoint)
    try:
        assert list(ex.map(t.echo, range(25), chunksize=7)) == list(range(25))
        assert list(ex.map(t.echo, [], chunksize=3)) == []
        it = ex.map(t.gated, [s1], [g1], ["late"], timeout=0.5)
        with pytest.raises(TimeoutError):  # from __next__, once the deadline passed
            next(it)
        Path(g1).touch()
        kept = ex.submit(t.echo, "kept")
    finally:
        ex.shutdown(wait=True)
    assert kept.done() and kept.result() == "kept"
    with pytest.raises(RuntimeError):
        ex.submit(t.echo, 1)
    with pytest.raises(RuntimeError):
        ex.map(t.echo, [1])


def test_wait_and_as_completed(cluster, tmp_path: Path):
    one_slot(cluster, concurrency=2)
    s1, g1 = str(tmp_path / "s1"), str(tmp_path / "g1")
    with zq.Client(cluster.endpoint) as client:
        slow = client.submit(t.gated, s1, g1, "slow")
        wait_until(lambda: Path(s1).exists(), 30, "the slow task to start")
        fast = client.submit(t.echo, "fast")
        done, not_done = cf.wait([slow, fast], timeout=30, return_when=cf.FIRST_COMPLETED)
        assert done == {fast} and not_done == {slow}
        bad = client.submit(t.fail_with, 5)
        ok = client.submit(t.echo, 6)
        assert ok.result(timeout=30) == 6  # done, but not an exception: wait goes on
        done, not_done = cf.wait([slow, ok, bad], timeout=30,
                                 return_when=cf.FIRST_EXCEPTION)
        assert bad in done and slow in not_done
        assert type(bad.exception()) is ValueError and bad.exception().args == (5,)
        done, not_done = cf.wait([slow, fast], timeout=0.2, return_when=cf.ALL_COMPLETED)
        assert not_done == {slow}  # the timeout returns what is done so far
        fast2 = client.submit(t.echo, "fast2")
        order = cf.as_completed([slow, fast2], timeout=30)
        assert next(order) is fast2
        Path(g1).touch()
        assert next(order) is slow and slow.result() == "slow"
        done, not_done = cf.wait([slow, fast, bad, ok], timeout=30)
        assert not not_done and len(done) == 4


def test_shutdown_cancel_futures_cancels_only_what_has_not_started(cluster, tmp_path: Path):
    """shutdown(cancel_futures=True): the pending futures are cancelled and never run; the
    running one is not cancelled and finishes (concurrent.futures' documented rule)."""
    one_slot(cluster)
    s1, g1, s2 = str(tmp_path / "s1"), str(tmp_path / "g1"), str(tmp_path / "s2")
    ex = zq.Executor(cluster.endpoint)
    running = ex.submit(t.gated, s1, g1, "ran")
    wait_until(lambda: Path(s1).exists(), 30, "the first task to start")
    pending = [ex.submit(t.gated, s2, g1, i) for i in range(3)]
    assert ex.client.flush(10)
    shutdown = threading.Thread(target=ex.shutdown, kwargs={"cancel_futures": True})
    shutdown.start()
    try:
        wait_until(lambda: all(f.cancelled() for f in pending), 30, "the pending to cancel")
        assert not running.done()  # shutdown(wait=True) is waiting for it
    finally:
        Path(g1).touch()  # lets the running task end; a pending one that ran would touch s2
        shutdown.join(30)
    assert not shutdown.is_alive()
    assert running.result(timeout=0) == "ran" and not running.cancelled()
    assert client_state(cluster, pending) == {"cancelled"}
    assert not Path(s2).exists()


def client_state(cluster, futures) -> set[str]:
    with zq.Client(cluster.endpoint) as c:
        return {c.get(f.id)["state"] for f in futures}
