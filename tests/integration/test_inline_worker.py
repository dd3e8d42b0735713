"""A real worker with inline running (zq worker --pool thread --inline-under): tasks
proven short run in the worker's loop thread (MainThread) and come back right: values,
errors raised again as their type, streams, time limits overrun (after the fact),
cancels of what waits behind a busy thread, several client threads submitting at
once, and the worker staying registered through an inline run longer than its
heartbeat interval."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import zq
from tests.integration.harness import wait_until
from zq.pools.thread import PROVEN_RUNS

APP = "tests.apps.inline_tasks"
WHERE, WHERE_AFTER = f"{APP}:where", f"{APP}:where_after"
LOOP = "MainThread"  # zq worker runs its loop in the process's main thread


def start(cluster, inline_under: str = "500ms", concurrency: int = 1) -> None:
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=concurrency,
                         extra=("--inline-under", inline_under, "--prefetch", "10"))


def prove(client: zq.Client, name: str, *args) -> None:
    for _ in range(PROVEN_RUNS):
        try:
            client.submit(name, *args).result(timeout=30)
        except Exception:
            pass  # failing tasks count too: what matters is that they were short


def test_values_errors_and_streams_inline(cluster):
    start(cluster)
    with zq.Client(cluster.endpoint) as client:
        first = client.submit(WHERE, 0).result(timeout=30)
        assert first == ["zq-task", 0]  # not proven yet: a pool thread
        prove(client, WHERE, 0)
        assert [client.submit(WHERE, i).result(timeout=30) for i in range(20)] == [
            [LOOP, i] for i in range(20)]
        prove(client, f"{APP}:fail", "x")
        with pytest.raises(ValueError, match="boom"):
            client.submit(f"{APP}:fail", "boom").result(timeout=30)
        prove(client, f"{APP}:chunks", 1)
        fut = client.submit(f"{APP}:chunks", 3)
        assert list(fut.stream(timeout=30)) == [0, 1, 2]
        assert fut.result(timeout=30) == LOOP


def test_a_limit_overrun_inline_fails_as_a_timeout_and_the_worker_stays(cluster):
    # a 3 s liveness window (not the harness's 1 s): the run below must outlast heartbeat
    # intervals, not the window, and on a loaded machine 0.5 s of loop time can take longer
    cluster.liveness = 12
    start(cluster, inline_under="400ms")
    with zq.Client(cluster.endpoint) as client:
        prove(client, WHERE_AFTER, 0)
        assert client.options(timeout=5).submit(WHERE_AFTER, 0).result(timeout=30) == LOOP
        # 0.5 s in the loop: two of the worker's heartbeat intervals (0.25 s), inside its
        # liveness window (3 s); over the task's limit, so its result is discarded
        late = client.options(timeout=0.45).submit(WHERE_AFTER, 0.5)
        with pytest.raises(zq.TaskTimeout):
            late.result(timeout=30)
        assert client.get(late.id)["attempt"] == 1  # not taken for lost and run again
        assert client.submit(WHERE_AFTER, 0).result(timeout=30) == "zq-task"  # demoted
        assert {w["name"] for w in client.status()["workers"]} == {"w1"}


def test_cancel_of_a_task_waiting_behind_a_busy_thread(cluster, tmp_path: Path):
    start(cluster)
    gate = str(tmp_path / "gate")
    with zq.Client(cluster.endpoint) as client:
        prove(client, WHERE, 0)
        held = client.submit(f"{APP}:where_unless_file", gate)  # never proven: a thread
        queued = [client.submit(WHERE, i) for i in range(3)]
        assert client.flush(30)
        wait_until(lambda: client.get(queued[1].id)["state"] == "running", 30,
                   "the queued tasks to reach the worker")
        assert queued[1].revoke() is True
        # Cancelled while the thread is still busy (the gate is shut): opening the gate
        # before the CANCEL reached the worker would let the task start first.
        wait_until(lambda: client.get(queued[1].id)["state"] == "cancelled", 30,
                   "the revoked task to be cancelled")
        Path(gate).touch()
        assert held.result(timeout=30) == "zq-task"
        assert queued[0].result(timeout=30) == ["zq-task", 0]  # behind a thread: no inline
        assert queued[2].result(timeout=30) == ["zq-task", 2]
        assert client.submit(WHERE, 9).result(timeout=30) == [LOOP, 9]


def test_several_client_threads_at_once(cluster):
    start(cluster, concurrency=2)
    with zq.Client(cluster.endpoint) as client:
        prove(client, WHERE, 0)
        got: dict[int, list] = {}
        errors: list[BaseException] = []

        def submitter(k: int) -> None:
            try:
                for i in range(k * 100, k * 100 + 50):
                    got[i] = client.submit(WHERE, i).result(timeout=30)
            except BaseException as e:  # reported below, not lost in the thread
                errors.append(e)

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors and not any(th.is_alive() for th in threads)
        assert sorted(got) == sorted(k * 100 + i for k in range(4) for i in range(50))
        assert all(v[1] == i for i, v in got.items())
        # several at once: some wait while the loop is busy and go to threads, most inline
        assert sum(v[0] == LOOP for v in got.values()) > 0
