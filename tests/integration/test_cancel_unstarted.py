"""Cancel unless started on a real master and worker (issue 13, protocol 1.5's QUERY
`cancel_unstarted`): Executor.shutdown(cancel_futures=True) and a map() left at its
timeout cancel the tasks already sent to the master that have not started, queued there
or waiting in a worker's prefetch queue, and the running one finishes, as
concurrent.futures does with pending futures; Future.cancel() takes the same path, one
round trip, the master deciding. Hostile cancel_unstarted queries get a clear answer and
the master serves on. What runs is known from gate files the tasks touch, never from
sleeps."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Any

import msgpack
import pytest

import zq
from tests.apps import futures_tasks as t
from tests.integration.harness import query, wait_until
from tests.integration.raw_peer import RawPeer
from zq.core import messages as m
from zq.core.messages import Cmd, Role

APP = "tests.apps.futures_tasks"
N = 6  # one running, three in the worker's queue, two queued at the master


def prefetching_worker(cluster) -> None:
    """One thread, and room for three more tasks in the worker's own queue."""
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1,
                         extra=("--prefetch", "3"))


def counts(cluster) -> dict[str, int]:
    return cluster.status()["counts"]


def started_running(cluster) -> int:
    """Running tasks the master knows have started (not waiting in a worker's queue)."""
    rows = query(cluster.endpoint, "tasks", {"state": "running"})
    return sum(1 for r in rows or () if r["started"] is not None)


def start_gated_map(ex: zq.Executor, tmp: Path, **kw: Any):
    """map() of N gated tasks: the first waits on gate g0, the others on gate g; each
    touches s<i> when it starts. Returns the results iterator once the first runs and
    the worker holds three more."""
    starts = [str(tmp / f"s{i}") for i in range(N)]
    gates = [str(tmp / "g0")] + [str(tmp / "g")] * (N - 1)
    results = ex.map(t.gated, starts, gates, range(N), **kw)
    return results, starts


def wait_for_one_running_three_held(cluster, starts: list[str]) -> None:
    wait_until(lambda: Path(starts[0]).exists(), 30, "the first task to start")
    wait_until(lambda: counts(cluster)["running"] == 4, 30, "three tasks in w1's queue")
    assert counts(cluster)["queued"] == N - 4


def test_shutdown_cancel_futures_cancels_a_maps_tasks_sent_but_not_started(cluster,
                                                                           tmp_path: Path):
    prefetching_worker(cluster)
    ex = zq.Executor(cluster.endpoint)
    results, starts = start_gated_map(ex, tmp_path)
    wait_for_one_running_three_held(cluster, starts)

    ex.shutdown(wait=False, cancel_futures=True)
    wait_until(lambda: counts(cluster)["cancelled"] == N - 1, 15,
               "the five tasks not started to be cancelled")
    assert counts(cluster)["running"] == 1  # the running one goes on
    (tmp_path / "g0").touch()
    (tmp_path / "g").touch()  # a task not cancelled would run now and touch its s<i>
    assert next(results) == 0  # the running one finishes and its result comes
    with pytest.raises(cf.CancelledError):
        next(results)
    wait_until(lambda: counts(cluster)["succeeded"] == 1, 15, "the first to succeed")
    assert not any(Path(s).exists() for s in starts[1:])  # none of the others ran


def test_a_map_left_early_cancels_what_has_not_started(cluster, tmp_path: Path):
    """concurrent.futures' map cancels its pending futures when its iterator is left (a
    break, a timeout): the running task is not stopped, it finishes."""
    prefetching_worker(cluster)
    with zq.Executor(cluster.endpoint) as ex:
        results, starts = start_gated_map(ex, tmp_path)
        wait_for_one_running_three_held(cluster, starts)
        (tmp_path / "g0").touch()
        assert next(results) == 0
        # the second now runs, the next three wait in w1's queue, the last is queued
        wait_until(lambda: Path(starts[1]).exists(), 30, "the second task to start")
        wait_until(lambda: counts(cluster)["running"] == 4, 30, "three tasks in w1's queue")
        # the master knows it started once w1's STARTED came (else it would cancel it:
        # the race, decided for the cancel)
        wait_until(lambda: started_running(cluster) == 1, 30, "the master to see it start")
        results.close()  # left before its end: what a break does
        wait_until(lambda: counts(cluster)["cancelled"] == N - 2, 15,
                   "the four tasks not started to be cancelled")
        (tmp_path / "g").touch()
        wait_until(lambda: counts(cluster)["succeeded"] == 2, 15,
                   "the running task to finish, not be stopped")
    assert counts(cluster)["cancelled"] == N - 2
    assert not any(Path(s).exists() for s in starts[2:])


def test_a_map_past_its_timeout_cancels_what_has_not_started(cluster, tmp_path: Path):
    prefetching_worker(cluster)
    with zq.Executor(cluster.endpoint) as ex:
        results, starts = start_gated_map(ex, tmp_path, timeout=2.0)
        wait_for_one_running_three_held(cluster, starts)
        with pytest.raises(TimeoutError):
            list(results)
        wait_until(lambda: counts(cluster)["cancelled"] == N - 1, 15,
                   "the five tasks not started to be cancelled")
        (tmp_path / "g0").touch()
        wait_until(lambda: counts(cluster)["succeeded"] == 1, 15, "the running one to end")
    assert counts(cluster)["cancelled"] == N - 1


def test_future_cancel_is_decided_by_the_master_in_one_step(cluster, tmp_path: Path):
    """cancel() of a task in a worker's queue returns True once the master has cancelled
    it (not when a CANCEL is merely on its way to the worker); of the running one, False."""
    prefetching_worker(cluster)
    s1, g1, s2 = str(tmp_path / "s1"), str(tmp_path / "g1"), str(tmp_path / "s2")
    with zq.Client(cluster.endpoint) as client:
        a = client.submit(t.gated, s1, g1, "a")
        wait_until(lambda: Path(s1).exists(), 30, "a to start")
        b = client.submit(t.gated, s2, g1, "b")
        wait_until(lambda: client.get(b.id)["state"] == "running", 30, "b to reach w1")
        assert client.get(b.id)["started"] is None
        assert a.cancel() is False and not a.cancelled()
        assert b.cancel() is True and b.cancelled()
        got = client.get(b.id)  # already final on the master: it decided
        assert got["state"] == "cancelled" and got["started"] is None
        assert got["error"]["message"] == "cancelled before it started"
        Path(g1).touch()
        assert a.result(timeout=30) == "a"
        assert client.submit(t.echo, 1).result(timeout=30) == 1  # w1's slot is free
    assert not Path(s2).exists()


def test_hostile_cancel_unstarted_queries_are_answered_and_the_master_serves_on(
        cluster, tmp_path: Path):
    prefetching_worker(cluster)
    s1, g1 = str(tmp_path / "s1"), str(tmp_path / "g1")
    with zq.Client(cluster.endpoint) as client, RawPeer(cluster.endpoint, Role.CLIENT) as raw:
        a = client.submit(t.gated, s1, g1, "a")
        wait_until(lambda: Path(s1).exists(), 30, "a to start")
        queued = client.submit(t.echo, "q")  # behind a: held by w1 or queued
        assert client.flush(10)  # known to the master before raw's query names it

        def ask(args: Any, request_id: int = 3) -> m.Reply:
            raw.send_raw([b"ZQC1", msgpack.packb([int(Cmd.QUERY), request_id,
                                                  "cancel_unstarted", args])])
            reply = raw.recv_until(lambda x: isinstance(x, m.Reply))
            assert isinstance(reply, m.Reply) and reply.request_id == request_id
            return reply

        for args, why in [({}, "needs the argument 'ids'"), ({"ids": "x"}, "an array"),
                          ({"ids": []}, "1 to 10000"), ({"ids": ["x"] * 10_001}, "1 to 10000"),
                          ({"ids": [a.id], "all": 1}, "no argument 'all'")]:
            reply = ask(args)
            assert reply.ok is False and why in reply.body, reply.body
        reply = ask({"ids": [7, a.id, "", "x" * 200, None, queued.id, "nope", a.id]})
        assert reply.ok is True
        assert reply.body["cancelled"] == [queued.id]
        assert reply.body["kept"] == {a.id: "running", "nope": "unknown"}
        assert [i for i, _ in reply.body["refused"]] == [0, 2, 3, 4]
        with pytest.raises(cf.CancelledError):
            queued.result(timeout=30)  # its submitter hears it was cancelled
        raw.send_raw([b"ZQC1", b"\xc1garbage"])  # not even msgpack
        assert ask({"ids": [a.id]}, 4).body["kept"] == {a.id: "running"}

        Path(g1).touch()
        assert a.result(timeout=30) == "a"
        assert client.submit(t.echo, 2).result(timeout=30) == 2
